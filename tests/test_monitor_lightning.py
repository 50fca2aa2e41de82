"""The Lightning callback on a real Trainer."""

from __future__ import annotations

import pytest

L = pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from _datasets import Busy, Waits  # noqa: E402
from trainperf.lightning import CalibratedDataModule, PerfMonitor  # noqa: E402
from trainperf.monitoring.records import read_periods  # noqa: E402


def quiet_trainer(**options) -> L.Trainer:
    """A CPU Trainer that writes nothing: no logger, checkpoints, bar or summary."""
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **options,
    )


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.slow
@pytest.mark.verdict
def test_fit_is_recorded_with_validation_and_metrics(tmp_path) -> None:
    callback = PerfMonitor(out=tmp_path / "run")
    # num_sanity_val_steps=2: validation before the first step, which is not part of it
    trainer = quiet_trainer(max_epochs=2, callbacks=[callback], num_sanity_val_steps=2)
    trainer.fit(
        Tiny(),
        DataLoader(Waits(24, 0.003, width=8), batch_size=4),
        DataLoader(Waits(12, 0.003, width=8), batch_size=4),
    )
    summary = callback.summary
    assert summary is not None
    assert summary.steps == 12
    assert summary.samples == 48
    periods = read_periods(tmp_path / "run" / "steps.jsonl")
    assert [p.kind for p in periods].count("val") == 3  # the sanity check, then 2 epochs
    assert periods[0].kind == "val"
    # 3 ms per sample waited on a timer, nothing to compute: the step waits for data.
    assert summary.step.kind == "input-bound"
    assert 0 < trainer.callback_metrics["perf/data_wait_share"] < 1
    assert trainer.callback_metrics["perf/samples_per_s"] > 0
    assert (tmp_path / "run" / "summary.json").exists()


class TinyWithTest(Tiny):
    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))


@pytest.mark.slow
def test_validation_and_test_over_the_training_dataset_are_not_training(tmp_path) -> None:
    data = Busy(16, 0.001, width=8)  # one dataset object for every loop
    callback = PerfMonitor(out=tmp_path / "run")
    trainer = quiet_trainer(max_epochs=2, callbacks=[callback], num_sanity_val_steps=0)
    from trainperf import monitor

    with monitor(out=tmp_path / "outer") as run:  # the callback joins this run
        trainer.fit(TinyWithTest(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
        trainer.test(TinyWithTest(), DataLoader(data, batch_size=8), verbose=False)
    assert callback.run is run
    assert not (tmp_path / "run").exists()
    periods = read_periods(tmp_path / "outer" / "steps.jsonl")
    kinds = [p.kind for p in periods]
    assert kinds == ["train"] * 4 + ["val"] + ["train"] * 4 + ["val"] + ["val"]
    assert [p.samples for p in periods if p.kind == "val"] == [16, 16, 16]
    assert run.summary is not None
    assert run.summary.steps == 8


def _fit(tmp_path, name: str, *, probe: bool):
    torch.manual_seed(0)
    callback = PerfMonitor(out=tmp_path / name, probe=probe)
    trainer = quiet_trainer(max_epochs=1, callbacks=[callback], num_sanity_val_steps=0)
    module = Tiny()
    trainer.fit(
        module,
        DataLoader(Waits(40, 0.004, width=8), batch_size=4),
        DataLoader(Busy(4, 0.0, width=8), batch_size=4),
    )
    return callback, module


@pytest.mark.slow
@pytest.mark.verdict
def test_an_input_bound_fit_is_confirmed_by_replaying_batches(tmp_path) -> None:
    probed, module = _fit(tmp_path, "probed", probe=True)
    plain, reference = _fit(tmp_path, "plain", probe=False)
    assert probed.summary.step.kind == plain.summary.step.kind == "input-bound"
    (finding,) = [f for f in probed.summary.findings if f.kind == "input-bound"]
    # 16 ms of loading per batch against a linear layer: a replayed step is far faster.
    assert finding.evidence["replay_step_s"] < 0.25 * finding.evidence["step_s"]
    assert finding.gain.startswith("measured by replaying 16 cached batches")
    assert (tmp_path / "probed" / "probe.json").is_file()
    (unprobed,) = [f for f in plain.summary.findings if f.kind == "input-bound"]
    assert "replay_step_s" not in unprobed.evidence
    # The probe's steps are not the run's, and the model is left as training left it.
    assert probed.summary.steps == plain.summary.steps == 10
    for mine, theirs in zip(module.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine, theirs)


class Pages(CalibratedDataModule):
    def train_dataset(self):
        return Busy(64, 0.0005, width=8)

    def val_dataset(self):
        return Busy(16, 0.0, width=8)


@pytest.mark.slow
def test_a_calibrated_datamodule_feeds_the_fit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRAINPERF_HOME", str(tmp_path))
    data = Pages(batch_size=8, samples=4)
    trainer = quiet_trainer(max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(Tiny(), datamodule=data)
    assert data.train_calibration.source == data.val_calibration.source == "measured"
    assert trainer.global_step == 8
    loader = trainer.train_dataloader
    assert loader.num_workers == data.train_calibration.chosen.num_workers
    assert loader.drop_last
    assert (tmp_path / "calibration.json").is_file()
