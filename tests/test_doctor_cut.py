"""One decision, one set of numbers: the doctor's proofs and its findings come from the
same steps, those before its stop; what the command does after the stop is reported
apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.verdict]

FIT_THEN_VALIDATE = textwrap.dedent(
    """
    import time
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Waits(Dataset):
        def __init__(self, seconds):
            self.seconds = seconds
        def __len__(self):
            return 400
        def __getitem__(self, i):
            time.sleep(self.seconds)  # a timer: the same margin on a busy machine
            return torch.full((8,), float(i % 5))

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)
        def training_step(self, batch, batch_idx):
            return self.layer(batch).pow(2).mean()
        def validation_step(self, batch, batch_idx):
            self.log("val", self.layer(batch).pow(2).mean())
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    model = Tiny()
    trainer = L.Trainer(max_epochs=5, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(model, DataLoader(Waits(0.001), batch_size=4))
    # After the fit the doctor stopped: a long validation pass, all of it loading.
    trainer.validate(model, DataLoader(Waits(0.01), batch_size=4), verbose=False)
    print("validated")
    """
)


def test_a_validation_pass_after_the_stop_is_reported_apart(tmp_path: Path) -> None:
    (tmp_path / "fit.py").write_text(FIT_THEN_VALIDATE, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainperf",
            "doctor",
            "--steps",
            "20",
            "--no-startup",
            "--json",
            "--",
            sys.executable,
            "fit.py",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean, "TRAINPERF_HOME": str(tmp_path / ".trainperf")},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert any("validated" in line for line in report["output_tail"])
    proofs = json.loads(next((tmp_path / ".trainperf" / "runs").glob("*/proofs.json")).read_text())
    # The proof decision and the findings read the same summary of the same steps.
    assert proofs["validation_share"] == pytest.approx(report["shares"]["validation"])
    assert proofs["step_verdict"] == report["verdict"]["step"]["kind"]
    assert report["val_s"] < 1.0  # the 4 s validation after the stop is not in it
    # It is reported apart, and nothing about validation is claimed without its proof.
    assert any(
        "after the doctor's stop" in note and "validation" in note for note in report["notes"]
    )
    validation_proofs = [p for p in proofs["proofs"] if p.get("role") == "validation"]
    validation_findings = [f for f in report["findings"] if "validation" in f["kind"]]
    assert bool(validation_proofs) == bool(validation_findings)
