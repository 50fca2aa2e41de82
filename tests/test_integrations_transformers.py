"""The Hugging Face Trainer integration on a real Trainer, in process and under the CLI."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from _hf import LENGTH, PAD, tiny_trainer  # noqa: E402
from _support import run_cli  # noqa: E402
from trainperf.integrations.transformers import (  # noqa: E402
    PerfCallback,
    _restored,
    _training_step,
)
from trainperf.monitoring.analyze import NOT_MEASURED  # noqa: E402
from trainperf.monitoring.records import read_periods  # noqa: E402

TOKENS_PER_ROW = LENGTH - PAD


@pytest.mark.slow
def test_steps_samples_and_tokens_count_every_micro_batch(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = PerfCallback(
        out=tmp_path / "run", probe=False, export=[f"tensorboard:{tmp_path / 'tb'}"]
    )
    # 48 rows, 4 a batch, 2 batches an optimizer step: 6 steps of 8 rows an epoch.
    trainer = tiny_trainer(str(tmp_path / "out"), accumulation=2, epochs=2, callbacks=[callback])
    trainer.train()
    summary = callback.summary
    assert summary is not None
    assert summary.steps == 12 == trainer.state.global_step
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    train = [p for p in periods if p.kind == "train"]
    # Accelerate's DataLoaderShard reads one batch ahead: an epoch's first step fetches
    # that one too, its last step one fewer; every epoch's count is exact.
    for epoch in (0, 1):
        steps = [p for p in train if p.epoch == epoch]
        assert sum(p.samples or 0 for p in steps) == 48
        assert sum(p.tokens or 0 for p in steps) == 48 * TOKENS_PER_ROW
        assert [p.samples for p in steps[1:-1]] == [8] * 4
    assert summary.tokens == 12 * 8 * TOKENS_PER_ROW
    assert summary.tokens_per_s == pytest.approx(summary.tokens / summary.train_s)
    # eval_strategy="epoch": one evaluation an epoch, recorded as validation, its
    # batches (12 rows, 4 a batch) not counted as training.
    val = [p for p in periods if p.kind == "val"]
    assert len(val) == 2
    assert [p.samples for p in val] == [12, 12]
    assert sorted({p.epoch for p in train}) == [0, 1]
    # The callback's exporter saw every step, as recorded.
    (events,) = (tmp_path / "tb").rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    steps = [e.step for e in accumulator.Scalars("perf/step/step_s")]
    assert steps == list(range(12))


@pytest.mark.slow
@pytest.mark.verdict
def test_a_waiting_collator_is_input_bound_and_the_probe_measures_it(tmp_path) -> None:
    callback = PerfCallback(out=tmp_path / "run")
    # The collator waits 60 ms on a timer; the tiny model's step takes a few ms.
    trainer = tiny_trainer(
        str(tmp_path / "out"), rows=96, wait_s=0.06, evaluate=False, callbacks=[callback]
    )
    trainer.train()
    summary = callback.summary
    assert summary is not None
    assert summary.steps == 24
    assert summary.step.kind == "input-bound"
    confirmed = next(f for f in summary.findings if f.kind == "input-bound")
    assert (tmp_path / "run" / "probe.json").is_file()
    disturbed = [r for r in summary.step.reasons if r.startswith(NOT_MEASURED)]
    if disturbed and summary.conditions is not None and summary.conditions.contended:
        # Beside busy loops a stretch of replayed steps can run several times slower than
        # the run's own (232 ms against 77 ms steps that waited 60 ms): the probe then
        # says so and the finding keeps its estimate.
        assert "replay_step_s" not in confirmed.evidence
        assert confirmed.gain.startswith("if input were free")
        return
    # The replay through the Trainer's own step: batches in memory step far faster.
    assert confirmed.evidence["replay_step_s"] < 0.5 * confirmed.evidence["step_s"]


@pytest.mark.slow
def test_training_steps_taken_for_a_proof_leave_no_trace(tmp_path) -> None:
    # A constant learning rate: a linear schedule ends at 0, where steps change nothing.
    trainer = tiny_trainer(str(tmp_path / "out"), evaluate=False, scheduler="constant")
    trainer.train()
    model, optimizer, scheduler = trainer.model, trainer.optimizer, trainer.lr_scheduler
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in optimizer.state_dict()["state"][0].items()}
    scheduled = scheduler.state_dict()["last_epoch"]
    batch = next(iter(trainer.get_train_dataloader()))  # shuffles: draws from the RNG
    step, rng = trainer.state.global_step, torch.get_rng_state()
    with _restored(trainer):
        take = _training_step(trainer)
        for _ in range(3):
            take(batch)
        moved = any(not torch.equal(v, weights[k]) for k, v in model.state_dict().items())
        assert moved, "the steps inside must train: else this test shows nothing"
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    after = optimizer.state_dict()["state"][0]
    assert all(torch.equal(after[k], v) for k, v in moments.items())
    assert scheduler.state_dict()["last_epoch"] == scheduled
    assert trainer.state.global_step == step
    assert torch.equal(torch.get_rng_state(), rng)


TRAINER_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from _hf import tiny_trainer

trainer = tiny_trainer({out!r}, rows=48, accumulation=2, epochs=1)
trainer.train()
print("trained", trainer.state.global_step)
"""


@pytest.mark.slow
def test_trainperf_run_adds_the_callback_to_every_trainer(tmp_path) -> None:
    script = tmp_path / "train.py"
    tests = str(Path(__file__).parent)
    script.write_text(TRAINER_SCRIPT.format(tests=tests, out=str(tmp_path / "out")))
    result = run_cli(
        "run", "--out", str(tmp_path / "run"), "--json", "--", sys.executable, str(script)
    )
    assert result.returncode == 0, result.stderr
    assert "trained 6" in result.stdout
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    train = [p for p in periods if p.kind == "train"]
    assert len(train) == 6
    assert sum(p.samples or 0 for p in train) == 48
    assert sum(p.tokens or 0 for p in train) == 48 * TOKENS_PER_ROW
    # The Trainer's evaluation (eval_strategy="epoch") is validation: the callback saw it.
    assert [p.kind for p in periods].count("val") == 1


ACCELERATE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from _hf import tiny_trainer

    trainer = tiny_trainer({out!r}, rows=64, epochs=1)
    trainer.train()
    """
)


@pytest.mark.slow
def test_the_doctor_under_accelerate_launch_monitors_each_rank(tmp_path) -> None:
    pytest.importorskip("accelerate")
    script = tmp_path / "train.py"
    script.write_text(
        ACCELERATE_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "out"))
    )
    # Without a GPU, --multi_gpu starts the processes through torchrun; the Trainer's
    # use_cpu=True makes them gloo DDP ranks. The launcher (python -m, which imports
    # torch.optim before it knows its own name) is not recorded.
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(script),
    ]
    done = run_cli(
        "doctor",
        "--json",
        "--no-startup",
        "--",
        *launch,
        env={"TRAINPERF_HOME": str(tmp_path / "home")},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    folder = Path(report["run"])
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["rank0", "rank1"]
    assert not (folder / "proofs.json").exists()  # no record of the launcher's own
    for number in (0, 1):
        rank = folder / f"rank{number}"
        assert json.loads((rank / "meta.json").read_text())["rank"] == number
        train = [p for p in read_periods(rank / "steps.jsonl") if p.kind == "train"]
        # 64 rows over 2 ranks, 4 a batch: 8 steps each, every row counted once.
        assert len(train) == 8
        assert sum(p.samples or 0 for p in train) == 32
    assert report["ranks"] == 2
    assert report["steps"] == 8
