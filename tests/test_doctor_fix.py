"""``trainperf doctor --fix``: each finding that has a fix gets its verified patch, shown
in the text, the JSON and the page, and nothing is written to the user's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

# A heavy package that waits on a timer when imported (third-party: on PYTHONPATH).
SLOW_STACK = "import time\ntime.sleep(0.6)\n\n\ndef ready():\n    return True\n"
# An entry point with both faults: heavy imports before its arguments are parsed, and a
# loader with no workers over a dataset whose reads wait (a disk would).
TRAIN = textwrap.dedent(
    """\
    import argparse
    import time

    import slowstack
    import torch
    from torch.utils.data import DataLoader


    class Pages:
        def __len__(self):
            return 4000

        def __getitem__(self, i):
            time.sleep(0.004)  # reading a page
            return torch.full((8,), float(i))


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", type=int, default=1)
        args = parser.parse_args()
        slowstack.ready()
        model = torch.nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(Pages(), batch_size=16)
        for _ in range(args.epochs):
            for x in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()


    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_doctor_fix_offers_the_imports_and_the_loader_patches(tmp_path: Path) -> None:
    site = tmp_path / "site" / "slowstack"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(SLOW_STACK, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINPERF_")}
    env = {**clean, "PYTHONPATH": str(tmp_path / "site"), "TRAINPERF_HOME": str(tmp_path / "h")}
    doctor = [sys.executable, "-m", "trainperf", "doctor", "--fix", "--steps", "40", "--json"]
    done = subprocess.run(
        [*doctor, "--", sys.executable, "train.py"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=550,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    kinds = {f["kind"] for f in report["findings"]}
    patches = {p["fix"]: p for p in report["patches"]}
    assert (project / "train.py").read_text(encoding="utf-8") == TRAIN  # nothing written

    assert "input-bound" in kinds
    loader = patches["loader"]
    assert loader["verified"] is True  # the doctor timed the settings as written
    assert loader["files"] == ["train.py"]
    added = [line for line in loader["diff"].splitlines() if line.startswith("+DataLoader")]
    added = [line for line in loader["diff"].splitlines() if "DataLoader(Pages()" in line]
    assert added[0].startswith("-")
    assert "num_workers=" in added[1]
    assert "num_workers=0" not in added[1]  # the calibration measured workers faster here
    assert "# trainperf fix loader" in added[1]
    assert "--from" in loader["command"]

    if "startup-imports" in kinds:  # set aside when its re-timed saving fell short
        imports = patches["imports"]
        assert imports["verified"] is True
        assert "-import slowstack\n" in imports["diff"]
        assert "+    import slowstack\n" in imports["diff"]
    else:
        assert "imports" not in patches

    page = (tmp_path / "h" / "runs").glob("*/doctor.html")
    html = next(page).read_text(encoding="utf-8")
    assert 'class="finding patch"' in html
    assert '<span class="diff-add">' in html
