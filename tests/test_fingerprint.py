"""The environment fingerprint: stable for one environment, changed by any component."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _support import GIB
from trainperf.errors import RecordError
from trainperf.fingerprint import Fingerprint, environment_fingerprint
from trainperf.resources import detect_resources


def test_stable_within_a_process() -> None:
    assert environment_fingerprint().digest == environment_fingerprint().digest


def test_stable_across_processes_and_free_memory() -> None:
    code = "from trainperf import environment_fingerprint as f; print(f().digest)"
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    digests.add(environment_fingerprint().digest)
    assert len(digests) == 1


def test_computing_it_does_not_import_torch() -> None:
    code = (
        "import sys; from trainperf import environment_fingerprint as f; fp = f(); "
        "print(fp.components['torch'], 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-1] == "False"
    assert out[0] != "None"  # torch is installed for the tests and was still found


def test_torch_and_cuda_versions_match_torch_itself() -> None:
    import torch

    components = environment_fingerprint().components
    assert components["torch"] == torch.__version__
    assert components["cuda"] == torch.version.cuda


def test_a_cgroup_change_changes_it_and_diff_names_it(fake_system) -> None:
    before = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    ctr = fake_system.cgroup_v2("/job")
    (ctr / "cpu.max").write_text("150000 100000\n")
    (ctr / "memory.max").write_text(f"{2 * GIB}\n")
    after = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))

    assert before != after
    assert set(before.diff(after)) == {"cpu_budget", "cgroup_cpu_quota", "memory_limit"}
    assert before.diff(after)["cpu_budget"] == (4.0, 1.5)
    assert "cgroup_cpu_quota None -> 1.5" in before.describe_diff(after)


def test_free_memory_does_not_change_it(fake_system) -> None:
    before = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    fake_system.meminfo(16 * GIB, 3 * GIB)
    after = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    assert before == after
    assert before.describe_diff(after) == "same environment"


def test_a_few_pages_more_or_less_of_ram_do_not_change_it(fake_system) -> None:
    before = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    fake_system.meminfo(16 * GIB + 12 * 4096, 12 * GIB)
    after = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    assert before == after


def test_components_cover_what_makes_runs_comparable(fake_system) -> None:
    components = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    assert set(components.components) == {
        "cpu_model",
        "host_cpus",
        "cpu_budget",
        "cgroup_cpu_quota",
        "memory_total",
        "memory_limit",
        "os",
        "machine",
        "python",
        "torch",
        "cuda",
        "gpus",
        "local_world_size",
        "world_size",
    }
    assert components.components["cpu_model"] == "Fake CPU @ 3.0GHz"
    assert components.components["memory_total"] == 16 * GIB


def test_rank_layout_changes_it(fake_system) -> None:
    one = environment_fingerprint(detect_resources(root=fake_system.root, environ={}))
    two = environment_fingerprint(
        detect_resources(root=fake_system.root, environ={"LOCAL_WORLD_SIZE": "2"})
    )
    assert set(one.diff(two)) == {"local_world_size", "world_size"}


def test_json_round_trip() -> None:
    original = environment_fingerprint()
    restored = Fingerprint.from_json(json.loads(json.dumps(original.to_json())))
    assert restored == original
    assert restored.components == original.components


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema=99), "schema 99"),
        (lambda d: d["components"].update(cpu_budget=1000), "digest does not match"),
        (lambda d: d.update(components=[1, 2]), "components"),
        (lambda d: d["components"].update(gpus=["a"]), "not a scalar"),
        (lambda d: d.pop("schema"), "schema"),
    ],
)
def test_tampered_or_foreign_records_are_refused(mutate, message) -> None:
    data = environment_fingerprint().to_json()
    mutate(data)
    with pytest.raises(RecordError, match=message):
        Fingerprint.from_json(data)
