"""Every kind of JSON trainperf writes for others, produced for real and reduced to its keys.

Shared by ``tests/test_schema.py`` (which compares the keys with the committed snapshots
in ``tests/schema/``) and ``tests/schema/regenerate.py`` (which writes them). Each kind is
produced by trainperf's own code: the command line run in-process on small inputs
(``report``, ``compare``, ``run``, ``startup``, ``lint-imports``, ``calibrate``, ``cache``,
``resources``), a real monitored loop (``meta.json``, ``steps.jsonl``, ``proofs.json``),
or the writers and ``to_json`` methods on fixed inputs where a real measurement would
make which keys appear depend on the machine's speed (the summary's findings and tail,
an import profile's groups). No key set depends on timing: only values do.

A key path joins nested keys with ``.`` and collapses list items to ``[]``; below a path
in a kind's ``maps`` the keys are data (package names, phases, marker names) and
collapse to ``{}``. The top-level ``schema_version`` is checked apart, not listed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from trainperf import _schema
from trainperf._schema import SCHEMA_KEY, Schema

SNAPSHOTS = Path(__file__).parent / "schema"
# "object": one JSON object, stamped at its top; "header": JSON Lines whose first line
# is a stamped header; "folder": JSON Lines of a run folder, versioned by its meta.json.
Stamp = Literal["object", "header", "folder"]
# The summary's objects whose keys are data: a finding's evidence names its measures,
# the anatomy's tables are keyed by phase.
SUMMARY_MAPS = (
    "verdict.findings[].evidence",
    "anatomy.samples_by_phase",
    "anatomy.shares",
    "anatomy.seconds_per_step",
)


def key_paths(value: object, *, maps: frozenset[str] = frozenset(), prefix: str = "") -> set[str]:
    """``{"a": {"b": 1}, "c": [{"d": 2}]}`` -> ``{"a", "a.b", "c", "c[].d"}``."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            name = "{}" if prefix in maps else str(key)
            path = f"{prefix}.{name}" if prefix else name
            out.add(path)
            out |= key_paths(item, maps=maps, prefix=path)
    elif isinstance(value, list):
        for item in value:
            out |= key_paths(item, maps=maps, prefix=f"{prefix}[]")
    return out


@dataclass(frozen=True)
class Kind:
    """One kind of output: its snapshot's name, its version's constant, how to make it."""

    name: str  # tests/schema/<name>.json
    schema: Schema
    produce: Callable[[Workshop], object]
    maps: frozenset[str] = frozenset()
    stamp: Stamp = "object"

    @property
    def constant(self) -> str:
        """The name of its constant in ``src/trainperf/_schema.py``."""
        return next(k for k, v in vars(_schema).items() if v is self.schema)

    @property
    def snapshot(self) -> Path:
        return SNAPSHOTS / f"{self.name}.json"

    def version(self, instance: object) -> object:
        """The ``schema_version`` the instance carries (a run folder's JSON Lines: none
        of their own, the folder's ``meta.json`` carries it; see the ``meta`` kind)."""
        if self.stamp == "folder":
            return self.schema.version
        top = instance[0] if self.stamp == "header" and isinstance(instance, list) else instance
        return top.get(SCHEMA_KEY) if isinstance(top, dict) else None

    def keys(self, instance: object) -> list[str]:
        """Its key paths, sorted, without the top-level ``schema_version``."""
        if self.stamp == "header" and isinstance(instance, list):
            header, *lines = instance
            found = {f"header.{k}" for k in key_paths(header, maps=self.maps)}
            found |= key_paths(lines, maps=self.maps, prefix="lines")
            found.discard(f"header.{SCHEMA_KEY}")
        else:
            found = key_paths(instance, maps=self.maps)
            if self.stamp == "object":
                found.discard(SCHEMA_KEY)
        return sorted(found)


def _lines(path: Path) -> list[object]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _double(page: np.ndarray) -> dict[str, object]:
    """The cached work of the ``cache`` kinds (module level: fingerprinted by value)."""
    return {"double": page * 2, "total": float(page.sum())}


class Pages:
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < 3:
            raise IndexError(i)
        return np.full((2, 2), i, dtype=np.float32)


class Workshop:
    """Makes each kind's instance in ``scratch``; what several kinds share is made once."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.home = scratch / "home"

    @contextlib.contextmanager
    def environment(self, **extra: str) -> Iterator[None]:
        """``TRAINPERF_HOME`` in the scratch folder, no other ``TRAINPERF_*`` but
        ``extra``, and the scratch folder as the current directory; all restored."""
        saved = dict(os.environ)
        for name in [n for n in os.environ if n.startswith("TRAINPERF_")]:
            del os.environ[name]
        os.environ.update(TRAINPERF_HOME=str(self.home), **extra)
        try:
            with contextlib.chdir(self.scratch):
                yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def cli(self, *args: str, on: Literal["stdout", "stderr"] = "stdout", **env: str) -> object:
        """``trainperf ARGS`` run in this process; its JSON."""
        from trainperf.cli import main

        out = io.StringIO()
        redirect = contextlib.redirect_stdout if on == "stdout" else contextlib.redirect_stderr
        with self.environment(**env), redirect(out):
            code = main(list(args))
        text = out.getvalue()
        if code not in (0, 1):
            raise AssertionError(f"trainperf {' '.join(args)} exited {code}: {text[-2000:]}")
        if on == "stderr":
            text = next(line for line in reversed(text.splitlines()) if line.startswith("{"))
        return json.loads(text)

    # -- a run, recorded for real -------------------------------------------------------

    @cached_property
    def monitored(self) -> Path:
        """A real monitored loop of 3 steps, with the doctor's proofs run on it (too few
        steps for a verdict, so no proof is measured: the record's own keys, quickly)."""
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        import trainperf
        from trainperf.doctor.child import prove

        folder = self.scratch / "monitored"
        loader = DataLoader(TensorDataset(torch.zeros(12, 4), torch.zeros(12, 1)), batch_size=4)
        model = torch.nn.Linear(4, 1)
        with self.environment():
            run = trainperf.monitor(out=folder)
            run.keep_loaders = True
            with run:
                for x, y in loader:  # backward() ends a step without an optimizer (and
                    # without torch.optim's first-use import of torch._dynamo, seconds)
                    torch.nn.functional.mse_loss(model(x), y).backward()
                prove(run)
        return folder

    # -- a run, written from fixed records ----------------------------------------------

    @cached_property
    def periods(self) -> list[object]:
        """Two epochs of 12 steps waiting 60% for data, every 6th step 10x slower (a
        tail), and a validation pass after each epoch: a verdict and findings follow. 22
        steady steps: enough for ``compare``, too few for the step-drift test (which
        would import scipy, seconds)."""
        from trainperf.monitoring.records import Period

        out: list[object] = []
        start, index = 0.0, 0
        for epoch in range(2):
            for i in range(12):
                wall = 1.0 if i % 6 == 5 else 0.1
                out.append(
                    Period(
                        "train",
                        index,
                        epoch,
                        start,
                        wall,
                        0.6 * wall,
                        8,
                        first_of_epoch=i == 0,
                        before_backward_s=0.7 * wall,
                    )
                )
                start, index = start + wall, index + 1
            out.append(
                Period("val", epoch, epoch, start, 0.5, 0.2, 16, batches=2, first_wait_s=0.15)
            )
            start += 0.5
        return out

    @cached_property
    def samples(self) -> list[object]:
        from trainperf.monitoring.sampler import Sample

        return [
            Sample(
                t / 2,
                2**28,
                2**26,
                95.0,
                10.0,
                1,
                other_cpu=0.1,
                idle_cpu=0.8,
                pressure=0.02,
                load=1.0,
                steal=0.0,
                throttled=0.0,
                throttled_s=0.0,
                involuntary_switches=3.0,
            )
            for t in range(20)
        ]

    @cached_property
    def anatomy(self) -> object:
        from trainperf.monitoring.anatomy_record import AnatomyRecord, GcPause, StackSample

        phases = ("data", "forward", "backward", "optimizer", "loop")
        return AnatomyRecord(
            interval_s=0.02,
            samples=tuple(
                StackSample(0.01 + 0.05 * i, phases[i % 5], "train.py", 10 + i % 5, "main")
                for i in range(120)
            ),
            gc_pauses=(GcPause(0.3, 0.002, 2),),
            sources={("train.py", 10 + n): f"step_{n}()" for n in range(5)},
        )

    @cached_property
    def workers(self) -> list[object]:
        from trainperf.monitoring.workers import Pool, WorkerPools

        return [
            WorkerPools(
                pid=100 + n,
                worker_id=n,
                num_workers=2,
                t_s=0.5,
                after="fetch",
                pools=(Pool("blas", "openblas", 2, "libopenblas"),),
                torch_threads=1,
                os_threads=4,
                helpers_ran=1,
            )
            for n in range(2)
        ]

    @cached_property
    def worker_records(self) -> dict[str, list[object]]:
        """The workers' own records, by file: starts, batches, memory (fixed values)."""
        from trainperf.monitoring import worker_timing as wt
        from trainperf.monitoring.worker_memory import (
            WORKER_MEMORY_FILE,
            ProcessReading,
            WorkerMemoryRecord,
        )

        starts = [
            wt.LoaderStart(n, 0, "Data", 1.0 + n, 0.2, 2, "spawn", False, 2**21, 0.01)
            for n in range(2)
        ]
        workers = [
            wt.WorkerStart(
                pid=200 + 2 * n + w,
                worker_id=w,
                num_workers=2,
                start=n,
                start_method="spawn",
                created_t_s=1.1 + n,
                unpickled_t_s=1.8 + n,
                entered_t_s=1.85 + n,
                init_fn_s=0.01,
                first_fetch_s=0.05,
                ready_t_s=1.95 + n,
                modules=900,
                imports_s=0.6,
                imports=(("torch", 0.5), ("numpy", 0.1)),
            )
            for n in range(2)
            for w in range(2)
        ]
        batches = [
            wt.BatchStages(200 + w, w, 0, 2.0 + 0.1 * i, 0.05, 0.01, 4, i, 0.02)
            for i in range(8)
            for w in range(2)
        ]
        memory = [
            WorkerMemoryRecord(
                t_s=2.0 * t,
                main=ProcessReading(100, 2**28, 2**27, 2**26, 2**26),
                workers=tuple(
                    ProcessReading(200 + w, 2**27, 2**26, 2**24 + t * 2**22, 2**26 - t * 2**22)
                    for w in range(2)
                ),
                shm_used_bytes=2**20,
                shm_total_bytes=2**30,
                cgroup_limit_bytes=2**33,
                cgroup_usage_bytes=2**29,
            )
            for t in range(8)
        ]
        return {
            wt.LOADER_STARTS_FILE: starts,
            wt.WORKER_STARTS_FILE: workers,
            wt.BATCHES_FILE: batches,
            WORKER_MEMORY_FILE: memory,
        }

    @cached_property
    def worker_timing(self) -> object:
        from trainperf.monitoring.worker_timing import WorkerTiming, stage_times, worker_startup

        records = list(self.worker_records.values())
        return WorkerTiming(
            startup=worker_startup(records[0], records[1], records[2]),  # type: ignore[arg-type]
            stages=stage_times(records[2]),  # type: ignore[arg-type]
            memory=tuple(records[3]),  # type: ignore[arg-type]
        )

    @cached_property
    def summary(self) -> object:
        """The monitor's summary of the records above, as ``summarize()`` makes it."""
        from trainperf.monitoring.analyze import summarize
        from trainperf.monitoring.probe import Replay

        return summarize(
            self.periods,
            startup_s=1.5,
            host=self.samples,
            threads=2,
            cpus=2.0,
            device_memory={0: (2**20, 2**21)},
            replayed=Replay(steps=8, step_s=0.04),
            anatomy=self.anatomy,
            worker_pools=self.workers,
            workers=self.worker_timing,
        )

    @cached_property
    def recorded(self) -> Path:
        """A run folder written by the writers ``trainperf.monitor()`` uses, with a doctor
        report beside it, as ``trainperf doctor`` leaves one."""
        from trainperf.fingerprint import Fingerprint
        from trainperf.monitoring.anatomy_record import write_anatomy
        from trainperf.monitoring.probe import PROBE_FILE, Replay
        from trainperf.monitoring.records import DEVICE_MEMORY, RunMeta, write_device_memory
        from trainperf.monitoring.workers import WORKERS_FILE

        folder = self.scratch / "recorded"
        folder.mkdir()
        meta = RunMeta(
            run_id=folder.name,
            command="python train.py",
            started_at=1.7e9,
            pid=1234,
            rank=None,
            fingerprint=Fingerprint({"cpu_budget": 2.0, "python": "3.11.7"}).to_json(),
            from_process_start=True,
            intra_op_threads=2,
        )
        (folder / "meta.json").write_text(json.dumps(meta.to_json()))
        steps = "".join(p.to_line() + "\n" for p in self.periods)
        (folder / "steps.jsonl").write_text(steps)
        host = "".join(json.dumps(s.to_json()) + "\n" for s in self.samples)
        (folder / "samples.jsonl").write_text(host)
        pools = "".join(json.dumps(w.to_json()) + "\n" for w in self.workers)
        (folder / WORKERS_FILE).write_text(pools)
        for name, records in self.worker_records.items():
            lines = "".join(json.dumps(r.to_json()) + "\n" for r in records)  # type: ignore[attr-defined]
            (folder / name).write_text(lines)
        with contextlib.chdir(self.scratch):
            write_anatomy(folder, self.anatomy)
        memory = write_device_memory({0: (2**20, 2**21)})
        (folder / DEVICE_MEMORY).write_text(json.dumps(memory))
        (folder / PROBE_FILE).write_text(json.dumps(Replay(steps=8, step_s=0.04).to_json()))
        # Two epochs of a DistributedSampler in the same order (set_epoch never called):
        # the input audit has an order finding to report.
        audit = {
            "loader": "training", "dataset": "Pages", "sampler": "DistributedSampler",
            "shuffle": True, "epoch": 0, "num_replicas": 1, "rank": 0, "dataset_len": 48,
            "sampler_len": 48, "in_order": True, "indexed": True, "dispatched": 12,
            "batches": 12, "samples": 48, "first_batch": "00112233", "batch_hashes": [1, 2, 3],
            "sketch": [4, 5], "sketch_exact": True,
        }  # fmt: skip
        lines = "".join(json.dumps({**audit, "pass": n}) + "\n" for n in range(2))
        (folder / "sample_audit.jsonl").write_text(lines)
        (folder / "summary.json").write_text(json.dumps(self.summary.to_json()))
        (folder / "doctor.json").write_text(json.dumps(self.doctor_report.to_json()))
        return folder

    # -- the doctor -----------------------------------------------------------------------

    @cached_property
    def import_report(self) -> object:
        """An import profile with one of everything (a real one's groups and chains
        depend on how fast the machine imports)."""
        from trainperf.startup.report import (
            ChainCost,
            GroupCost,
            ImportReport,
            LineCost,
            PackageCost,
            TreeNode,
            Verification,
        )

        entry = str(self.entry)
        return ImportReport(
            target=entry,
            runs=2,
            total_s=0.04,
            modules=120,
            lines=(LineCost(entry, 2, "import numpy", 0.03, 0.035),),
            packages=(PackageCost("numpy", 0.02, 0.03, 90),),
            chains=(ChainCost("numpy", f"{entry}:2", ("numpy",), 0.03),),
            groups=(GroupCost((f"{entry}:2",), 0.03, ("numpy",)),),
            optional_s=0.001,
            optional_packages=("yaml",),
            verified=(Verification(entry, 2, 0.03, 0.028),),
            tree=(TreeNode("numpy", 0.02, 0.03, (TreeNode("numpy.core", 0.01, 0.01),)),),
        )

    @cached_property
    def entry(self) -> Path:
        """An entry point that reads its configuration, then imports a package."""
        path = self.scratch / "train.py"
        path.write_text(
            "import argparse\nimport numpy\n\n\ndef main():\n    argparse.ArgumentParser()\n"
            "\n\nif __name__ == '__main__':\n    main()\n"
        )
        return path

    @cached_property
    def doctor_report(self) -> object:
        """The doctor's report on the summary above: its start-up section made by the
        doctor's own code from the import profile above (measured nothing), no proofs
        (``proofs`` has their record's keys)."""
        import trainperf.startup
        from trainperf.doctor import diagnose
        from trainperf.doctor.report import DoctorFinding, DoctorReport

        with contextlib.ExitStack() as stack:
            stack.enter_context(self.environment())
            stack.enter_context(_replaced(trainperf.startup, "measure_imports", self._profile))
            startup = diagnose._startup(str(self.entry), lambda message: None)
        startup["markers"] = {"config_validated": 0.4, "first_step": 2.1}
        finding = DoctorFinding(
            kind="input-bound",
            title="training waits for its DataLoader (num_workers=0)",
            evidence=("the median training step waits 60% of its 100 ms",),
            fix="set num_workers=2",
            gain="+40% samples/s",
            gain_source="measured",
            speedup=1.4,
            overrides=("data.num_workers=2",),
            speedup_low=1.3,
            speedup_high=1.5,
            reasons=("fewer than 20 steady steps",),
        )
        return DoctorReport(
            command=("python", "train.py"),
            bundled=False,
            run=str(self.scratch / "recorded"),
            returncode=0,
            finished=True,
            elapsed_s=12.5,
            resources=self.limits.to_json(),
            startup=startup,
            summary=self.summary.to_json(),
            proofs=(),
            findings=(finding,),
            failure=None,
            output_tail=("epoch 1 done",),
            stopped_at_step=60,
            notes=("a note",),
            set_aside=("start-up: nothing worth deferring",),
            patches=(
                {
                    "finding": "input-bound",
                    "fix": "loader",
                    "files": ["train.py"],
                    "verified": True,
                    "summary": ["line 9: num_workers 0 -> 2"],
                    "diff": "--- a/train.py\n+++ b/train.py\n",
                    "failure": None,
                    "command": "trainperf fix loader train.py --from RUN --write",
                },
            ),
        )

    def _profile(self, *args: object, **kwargs: object) -> object:
        return self.import_report

    # -- stores ---------------------------------------------------------------------------

    @cached_property
    def limits(self) -> object:
        """This machine's resources, with one GPU (so that a GPU's keys are in)."""
        from trainperf.resources import detect_resources
        from trainperf.resources.gpu import GpuInfo

        found = detect_resources(gpus=False)
        gpu = GpuInfo(index=0, name="NVIDIA H200", memory_total_bytes=141 << 30, uuid="GPU-0")
        return dataclasses.replace(found, gpus=(gpu,))

    @cached_property
    def linted(self) -> object:
        """``lint-imports`` on the entry point; it measures numpy's import cost into
        the import-cost store (``import-costs``)."""
        return self.cli("lint-imports", str(self.entry), "--json", "--threshold", "1e-6")

    @cached_property
    def calibrated(self) -> object:
        """``calibrate`` on a tiny in-memory dataset, one CPU (one candidate, quickly);
        it keeps the result in the calibration store (``calibration-store``)."""
        target = self.scratch / "target.py"
        target.write_text(
            "import torch\nfrom torch.utils.data import TensorDataset\n\n\ndef dataset():\n"
            "    data = TensorDataset(torch.zeros(64, 4), torch.zeros(64, 1))\n"
            "    return {'dataset': data, 'batch_size': 8}\n"
        )
        return self.cli(
            "calibrate", f"{target}:dataset", "--samples", "2", "--json", TRAINPERF_CPUS="1"
        )

    @cached_property
    def cache_dir(self) -> Path:
        from trainperf.cache import CachedDataset

        folder = self.scratch / "cache"
        with self.environment():
            CachedDataset(Pages(), _double, cache_dir=folder).precompute()
        return folder


@contextlib.contextmanager
def _replaced(owner: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# -- the producers ---------------------------------------------------------------------------


def _run_output(shop: Workshop) -> object:
    """``trainperf run --json`` on a command that leaves the recorded run in its folder."""
    out = shop.scratch / "run-output"
    copy = (
        "import os, shutil, sys; "
        "shutil.copytree(sys.argv[1], os.environ['TRAINPERF_RUN_DIR'], dirs_exist_ok=True)"
    )
    command = [sys.executable, "-c", copy, str(shop.recorded)]
    return shop.cli("run", "--json", "--out", str(out), "--", *command, on="stderr")


def _ab(shop: Workshop) -> object:
    from trainperf.cli.ab import _record
    from trainperf.monitoring.ab import compare_rounds
    from trainperf.monitoring.interleave import Segment

    a, b = tuple([0.020 + 0.001 * (i % 3) for i in range(25)]), tuple([0.010] * 25)
    result = compare_rounds([(a, b)] * 4)
    segments = [
        Segment(side, n, shop.scratch / f"{side.lower()}{n}", steps, 30)
        for n in range(1, 5)
        for side, steps in (("A", a), ("B", b))
    ]
    return _record(
        result, segments, a=["python", "a.py"], b=["python", "b.py"], steps=30, folder=shop.scratch
    )


def _imports(shop: Workshop) -> object:
    from trainperf.cli.imports import json_output
    from trainperf.startup.render import over_budget

    report = shop.import_report
    return json_output(report, over_budget(report, budget_s=0.01, max_modules=None))


def _doctor(shop: Workshop) -> object:
    from trainperf.cli.doctor import json_output

    return json_output(shop.doctor_report, str(shop.scratch / "doctor.html"))


def _fix_imports(shop: Workshop) -> object:
    """``fix imports --json``: the plan made by the fixer's own code on a small entry
    point, with a fixed timing (a real one imports it in turns: seconds)."""
    from trainperf.calibration.speedup import speedup_interval
    from trainperf.fix.imports import plan_file
    from trainperf.fix.verify import ImportsFix, Timing
    from trainperf.startup.probe import resolve_target

    entry = shop.scratch / "fix_train.py"
    entry.write_text(
        "import numpy\nimport json\nimport zlib  # noqa: F401\n\n\ndef main():\n"
        "    return numpy.zeros(1), json.dumps\n",
        encoding="utf-8",
    )
    plan = plan_file(
        entry,
        loads=lambda _p, _l, module: ({module}, {module}),
        heavy=lambda package: package in ("numpy", "zlib"),
        later=lambda _p, _l, _m: None,
    )
    speed = speedup_interval([1.0, 1.1], [4.0, 4.2], paired=True)
    result = ImportsFix(
        resolve_target(str(entry), None),
        plan,
        timings=[Timing("import", 0.8, 0.2, speed, 2)],
        savings_s={1: 0.6},
        check="pytest -q",
        notes=["a note"],
    )
    return result.to_json(shop.scratch)


def _fix_loader(shop: Workshop) -> object:
    """``fix loader --json`` on a script, with the calibration stored above."""
    _ = shop.calibrated
    train = shop.scratch / "fix_loader.py"
    train.write_text(
        "from torch.utils.data import DataLoader\n\n\ndef main(data):\n"
        "    return DataLoader(data, batch_size=8, pin_memory=True)\n",
        encoding="utf-8",
    )
    return shop.cli("fix", "loader", str(train), "--no-verify", "--json", TRAINPERF_CPUS="1")


def _scaling(shop: Workshop) -> object:
    """``doctor --scale``'s scaling.json, assembled from fixed runs (a real one starts
    torchrun twice: seconds)."""
    from trainperf.doctor.scale_report import ScaleRun, assemble
    from trainperf.monitoring.ranks import RankRow

    def run(ranks: int, wait: float) -> ScaleRun:
        rows = tuple(
            RankRow(r, 38, 0.01 + wait, wait, 0.004, 0.004 + wait, 0.006, 0.5, 800.0, 2 // ranks)
            for r in range(ranks)
        )
        return ScaleRun(
            ranks,
            1,
            str(shop.scratch / f"n{ranks}-r1"),
            0,
            None,
            steps=40,
            samples_per_s=800.0 * ranks / (1 + 100 * wait),
            step_s=0.01 + wait,
            data_wait_s=wait,
            forward_s=0.004,
            sync_s=0.006,
            straggler_s=0.0 if ranks == 1 else 0.001,
            threads_per_rank=2 // ranks,
            rank_rows=rows,
        )

    report = assemble(
        [run(1, 0.001), run(2, 0.04)],
        command=("torchrun", "--nproc-per-node", "{n}", "train.py"),
        counts=(1, 2),
        rounds=1,
        steps=40,
        budget_s=None,
        folder=str(shop.scratch / "scale"),
        cpu_budget=2.0,
        elapsed_s=20.0,
    )
    return report.to_json()


def _resources(shop: Workshop) -> object:
    """``trainperf resources --json`` on this machine, given one GPU."""
    import trainperf.cli.resources as command

    with _replaced(command, "detect_resources", lambda **_: shop.limits):
        return shop.cli("resources", "--json")


def _cache(action: str) -> Callable[[Workshop], object]:
    def produce(shop: Workshop) -> object:
        return shop.cli("cache", action, str(shop.cache_dir), "--json")

    return produce


def _exporters(s: Workshop) -> object:
    """exporters.json of a run with one exporter that took a step."""
    from trainperf.exporters.channel import Exports
    from trainperf.monitoring.records import Period

    class Kept:
        name = "kept"

        def open(self) -> None: ...
        def write_step(self, step: int, figures: object) -> None: ...
        def write_epoch(self, epoch: int, figures: object) -> None: ...
        def close(self, end: object) -> None: ...

    folder = s.scratch / "exported"
    folder.mkdir(exist_ok=True)
    exports = Exports([Kept()])
    exports.start()
    exports.put(Period("train", 0, 0, 0.0, 0.1, 0.01, 4))
    exports.close(None, folder=folder)
    return _json(folder / "exporters.json")


_SUMMARY = frozenset(SUMMARY_MAPS)
_DOCTOR = frozenset(
    (*SUMMARY_MAPS, "startup.markers", "training_arguments", "findings[].training_arguments")
)

KINDS: tuple[Kind, ...] = (
    # A run folder: meta.json carries the version of all of it.
    Kind(
        "meta",
        _schema.RUN_RECORDS,
        lambda s: _json(s.monitored / "meta.json"),
        frozenset({"fingerprint.components"}),
    ),
    Kind(
        "steps", _schema.RUN_RECORDS, lambda s: _lines(s.monitored / "steps.jsonl"), stamp="folder"
    ),
    Kind(
        "samples",
        _schema.RUN_RECORDS,
        lambda s: _lines(s.recorded / "samples.jsonl"),
        stamp="folder",
    ),
    Kind(
        "workers",
        _schema.RUN_RECORDS,
        lambda s: _lines(s.recorded / "workers.jsonl"),
        stamp="folder",
    ),
    *(
        Kind(
            name.removesuffix(".jsonl").replace("_", "-"),
            _schema.RUN_RECORDS,
            lambda s, name=name: _lines(s.recorded / name),  # type: ignore[misc]
            stamp="folder",
        )
        for name in (
            "loader_starts.jsonl",
            "worker_starts.jsonl",
            "worker_batches.jsonl",
            "worker_memory.jsonl",
        )
    ),
    Kind(
        "sample-audit",
        _schema.RUN_RECORDS,
        lambda s: _lines(s.monitored / "sample_audit.jsonl"),
        stamp="folder",
    ),
    Kind("device-memory", _schema.RUN_RECORDS, lambda s: _json(s.recorded / "device_memory.json")),
    Kind("probe", _schema.RUN_RECORDS, lambda s: _json(s.recorded / "probe.json")),
    Kind(
        "anatomy", _schema.ANATOMY, lambda s: _lines(s.recorded / "anatomy.jsonl"), stamp="header"
    ),
    Kind("summary", _schema.SUMMARY, lambda s: _json(s.recorded / "summary.json"), _SUMMARY),
    Kind("run", _schema.SUMMARY, _run_output, _SUMMARY),
    Kind("proofs", _schema.PROOFS, lambda s: _json(s.monitored / "proofs.json")),
    Kind("doctor", _schema.DOCTOR, _doctor, _DOCTOR),
    Kind("scaling", _schema.SCALING, _scaling),
    Kind("fix-imports", _schema.FIX, _fix_imports),
    Kind("fix-loader", _schema.FIX, _fix_loader, frozenset({"settings"})),
    # Command outputs.
    Kind(
        "report",
        _schema.REPORT,
        lambda s: s.cli("report", str(s.recorded), "--json"),
        frozenset((*SUMMARY_MAPS, "doctor_findings[].training_arguments")),
    ),
    Kind(
        "compare",
        _schema.COMPARE,
        lambda s: s.cli("compare", str(s.recorded), str(s.recorded), "--json"),
    ),
    Kind("ab", _schema.AB, _ab),
    Kind("imports", _schema.IMPORTS, _imports),
    Kind("lint-imports", _schema.LINT_IMPORTS, lambda s: s.linted),
    Kind(
        "startup",
        _schema.STARTUP,
        lambda s: s.cli("startup", "--repeat", "1", "--json", "--", sys.executable, "-c", "pass"),
        frozenset({"markers", "per_run[].markers"}),
    ),
    Kind("calibrate", _schema.CALIBRATE, lambda s: s.calibrated),
    Kind("cache-info", _schema.CACHE_INFO, _cache("info")),
    Kind("cache-verify", _schema.CACHE_VERIFY, _cache("verify")),
    Kind("cache-clear", _schema.CACHE_CLEAR, _cache("clear")),
    Kind("resources", _schema.RESOURCES, _resources),
    # Stores.
    Kind(
        "calibration-store",
        _schema.CALIBRATION_STORE,
        lambda s: (s.calibrated, _json(s.home / "calibration.json"))[1],
        frozenset({"entries"}),
    ),
    Kind("exporters", _schema.EXPORTERS, _exporters),
    Kind("cache-store", _schema.CACHE_STORE, lambda s: _json(s.cache_dir / "trainperf-cache.json")),
    Kind(
        "import-costs",
        _schema.IMPORT_COSTS,
        lambda s: (s.linted, _json(s.home / "import_costs.json"))[1],
        frozenset({"entries", "entries.{}"}),
    ),
)
