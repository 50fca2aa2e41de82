"""Start methods and persistent workers: real workers under fork, forkserver and spawn,
each set explicitly; a dataset that does not pickle; start-up over short epochs.

Every cost a relation rests on is a timer (``time.sleep``), not CPU work, so the
relations hold however busy the machine is: a spawned worker that waits 0.5 s to
unpickle its dataset starts later than a forked one, which pickles nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import threading
import time

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import Dataset  # noqa: E402

from trainperf.calibration.api import Calibration, calibrate  # noqa: E402
from trainperf.calibration.config import LoaderConfig, WorkerThreads  # noqa: E402
from trainperf.calibration.epochs import (  # noqa: E402
    DEFAULT_EPOCHS,
    EpochPlan,
    run_samples_per_s,
    startup_s,
    time_epochs,
)
from trainperf.calibration.render import render_calibration  # noqa: E402
from trainperf.calibration.startmethod import (  # noqa: E402
    available_start_methods,
    default_start_method,
    unpicklable,
)
from trainperf.calibration.trials import Trial, TrialPlan, run_trial  # noqa: E402
from trainperf.errors import RecordError, UsageError  # noqa: E402
from trainperf.resources import detect_resources  # noqa: E402

# Set to 1 in the test process before workers start: a forked worker sees the 1, a
# spawned or forkserver one imports this module afresh and sees 0.
_MARK = 0


class StartSeen(Dataset[torch.Tensor]):
    """Each sample: whether the loading process's parent is the process that made the
    dataset, and the ``_MARK`` it sees."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([int(os.getppid() == self.parent), _MARK])


class Waits(Dataset[torch.Tensor]):
    """Samples that wait ``wait`` seconds each (storage latency, no CPU)."""

    def __init__(self, n: int, wait: float) -> None:
        self.n, self.wait = n, wait

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        time.sleep(self.wait)
        return torch.ones(8)


class SlowToUnpickle(Waits):
    """A copy unpickled in a worker (spawn, forkserver) waits ``unpickle`` seconds first,
    as a large state would take to rebuild; ``fork`` copies it without pickling."""

    def __init__(self, n: int, wait: float, unpickle: float) -> None:
        super().__init__(n, wait)
        self.unpickle = unpickle

    def __setstate__(self, state: dict[str, object]) -> None:
        time.sleep(float(state["unpickle"]))  # type: ignore[arg-type]
        self.__dict__.update(state)


class OpensPerProcess(Waits):
    """Each process that loads from it opens its source first, ``opening`` seconds (a
    connection, an index read), under every start method."""

    def __init__(self, n: int, wait: float, opening: float) -> None:
        super().__init__(n, wait)
        self.opening, self.opened_in = opening, -1

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.opened_in != os.getpid():
            time.sleep(self.opening)
            self.opened_in = os.getpid()
        return super().__getitem__(i)


class HoldsALock(Waits):
    """Loads anywhere, but cannot be pickled: it holds a lock."""

    def __init__(self, n: int, wait: float) -> None:
        super().__init__(n, wait)
        self.guard = {"lock": threading.Lock()}


@pytest.fixture
def two_cpus():
    found = detect_resources(gpus=False)
    return dataclasses.replace(found, cpu_budget=2.0, cpu_affinity=(0, 1), local_world_size=1)


# -- the settings and the model, no workers ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"num_workers": 2, "multiprocessing_context": "thread"}, "must be one of fork, forks"),
        ({"multiprocessing_context": "spawn"}, "multiprocessing_context='spawn' needs worker"),
    ],
)
def test_a_start_method_is_checked(fields, fragment) -> None:
    with pytest.raises(UsageError) as caught:
        LoaderConfig(batch_size=8, **fields)
    assert fragment in str(caught.value)


def test_the_start_method_reaches_the_loader_the_code_and_the_record() -> None:
    config = LoaderConfig(
        batch_size=8,
        num_workers=2,
        prefetch_factor=2,
        persistent_workers=True,
        multiprocessing_context="forkserver",
        main_threads=1,
        worker_threads=1,
    )
    kwargs = config.loader_kwargs()
    assert kwargs["multiprocessing_context"] == "forkserver"
    assert kwargs["worker_init_fn"] == WorkerThreads(1)
    assert config.as_code() == (
        "DataLoader(dataset, batch_size=8, num_workers=2, prefetch_factor=2, "
        'persistent_workers=True, multiprocessing_context="forkserver", '
        "worker_init_fn=trainperf.calibration.config.WorkerThreads(1)); "
        "torch.set_num_threads(1) in the training process"
    )
    assert "multiprocessing_context=forkserver" in config.describe()
    assert LoaderConfig.from_json(config.to_json()) == config
    old = {k: v for k, v in config.to_json().items() if k != "multiprocessing_context"}
    assert LoaderConfig.from_json(old).multiprocessing_context is None  # an older record
    with pytest.raises(RecordError, match="invalid loader configuration"):
        LoaderConfig.from_json({**config.to_json(), "multiprocessing_context": "thread"})
    assert (
        LoaderConfig(batch_size=8).as_code() == "DataLoader(dataset, batch_size=8, num_workers=0)"
    )


def test_the_default_start_method_is_read_without_being_fixed() -> None:
    import multiprocessing

    before = multiprocessing.get_start_method(allow_none=True)
    assert default_start_method() in available_start_methods()
    assert multiprocessing.get_start_method(allow_none=True) == before


class Nested:
    def __init__(self) -> None:
        self.name = "pages"
        self.reader = Reader()


class Reader:
    def __init__(self) -> None:
        self.path = "/data"
        self.handle = threading.Lock()


def test_what_does_not_pickle_is_named_down_to_the_attribute() -> None:
    assert unpicklable(Nested(), "dataset") == (
        "dataset.reader.handle (TypeError: cannot pickle '_thread.lock' object)"
    )
    assert unpicklable({"a": 1, "b": [1, threading.Lock()]}, "x") == (
        "x['b'][1] (TypeError: cannot pickle '_thread.lock' object)"
    )
    found = unpicklable(lambda batch: batch, "collate_fn")
    assert found is not None
    assert found.startswith("collate_fn (")
    assert unpicklable(Waits(4, 0.0), "dataset") is None


def _trial(**fields: object) -> Trial:
    config = LoaderConfig(batch_size=10, num_workers=2, prefetch_factor=2)
    return Trial(config, "measured", **fields)  # type: ignore[arg-type]


def test_start_up_is_weighed_per_epoch_unless_the_workers_persist() -> None:
    # 100 samples/s: a batch of 10 takes 0.1 s; the 5 warm-up batches took 1.5 s, so
    # the start costs 1.0 s. A run of 3 epochs of 10 batches is 3 s of loading.
    trial = _trial(samples_per_s=100.0, warmup_s=1.5)
    assert startup_s(trial.config, 1.5, 100.0) == pytest.approx(1.0)
    persistent = EpochPlan(3, 10, persistent=True)
    restarting = EpochPlan(3, 10, persistent=False)
    assert run_samples_per_s(trial, persistent) == pytest.approx(300 / 4.0)
    assert run_samples_per_s(trial, persistent, live_startup_s=0.2) == pytest.approx(300 / 4.4)
    assert run_samples_per_s(trial, restarting) == pytest.approx(300 / 6.0)
    # The training process loads without workers: nothing starts again.
    inline = Trial(LoaderConfig(batch_size=10), "measured", samples_per_s=100.0, warmup_s=1.1)
    assert run_samples_per_s(inline, restarting) == pytest.approx(300 / 4.0)
    assert run_samples_per_s(_trial(samples_per_s=None), persistent) is None


def test_the_epochs_of_a_run() -> None:
    plan = EpochPlan.of(1000, 64, epochs=None, persistent=True)
    assert (plan.count, plan.batches, plan.count_given) == (DEFAULT_EPOCHS, 16, False)
    assert "assumed" in plan.describe()
    assert EpochPlan.of(1000, 64, epochs=3, persistent=False, ranks=2).batches == 8
    assert EpochPlan.from_json(plan.to_json()) == plan
    with pytest.raises(UsageError, match="count must be an integer >= 1, got 0"):
        EpochPlan(0, 4)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"persistent_workers": "no"}, "persistent_workers must be True or False"),
    ],
)
def test_bad_epochs_and_persistence_are_refused(tmp_path, kwargs, fragment) -> None:
    with pytest.raises(UsageError) as caught:
        calibrate(Waits(8, 0.0), batch_size=2, home=tmp_path, **kwargs)
    assert fragment in str(caught.value)


# -- real workers ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_each_start_method_starts_the_workers_it_names(method, monkeypatch) -> None:
    if method not in available_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    monkeypatch.setattr(f"{__name__}._MARK", 1)
    kept: list[object] = []
    config = LoaderConfig(batch_size=2, num_workers=2, multiprocessing_context=method)
    trial = run_trial(
        StartSeen(),
        config,
        TrialPlan(batches=4, chunk=2, timeout_s=120, min_time_s=0.0),
        start=0,
        collate_fn=None,
        step=None,
        judge=lambda rate, batches: None,
        clock=time.perf_counter,
        keep=kept,
    )
    assert trial.status == "measured", trial.reason
    assert trial.first_batch_s is not None
    assert trial.warmup_s >= trial.first_batch_s > 0
    seen = {tuple(row.tolist()) for batch in kept for row in batch}  # type: ignore[attr-defined]
    # fork: a child of this process with its memory; spawn: a child, fresh; forkserver:
    # a child of the server, fresh.
    expected = {"fork": (1, 1), "spawn": (1, 0), "forkserver": (0, 0)}[method]
    assert seen == {expected}
    assert json.loads(json.dumps(trial.to_json()))["multiprocessing_context"] == method


@pytest.mark.slow
def test_a_dataset_that_does_not_pickle_fails_only_where_it_is_pickled(tmp_path, two_cpus) -> None:
    result = calibrate(
        HoldsALock(256, 0.002),
        batch_size=8,
        home=tmp_path,
        limits=two_cpus,
        max_workers=2,
        samples=8,
        epochs=1,
    )
    assert result.chosen.num_workers == 2  # the waits overlap in workers
    assert result.chosen.multiprocessing_context == "fork"
    tried = {t.config.multiprocessing_context: t for t in result.candidates if t.config.num_workers}
    for method in ("forkserver", "spawn"):
        assert tried[method].status == "failed"
        assert tried[method].reason.startswith(
            f"{method} workers receive the dataset (HoldsALock) pickled and it does not "
            "pickle: dataset.guard['lock'] (TypeError: cannot pickle '_thread.lock' object)"
        )
    assert "dataset.guard['lock']" in render_calibration(result)


@pytest.mark.slow
def test_a_collate_fn_that_does_not_pickle_is_named() -> None:
    config = LoaderConfig(batch_size=2, num_workers=1, multiprocessing_context="spawn")
    trial = run_trial(
        Waits(8, 0.0),
        config,
        TrialPlan(batches=2, chunk=2, timeout_s=60),
        start=0,
        collate_fn=lambda batch: torch.stack(batch),
        step=None,
        judge=lambda rate, batches: None,
        clock=time.perf_counter,
    )
    assert trial.status == "failed"
    assert "spawn workers receive collate_fn pickled" in trial.reason
    assert "define it at module level" in trial.reason


def _grid(pick: LoaderConfig, persistent: bool, cpus: int) -> list[LoaderConfig]:
    """The pick, no workers, and every start method with and without persistent workers
    (those allowed) at the pick's worker count."""
    grid = [pick, LoaderConfig(batch_size=pick.batch_size, main_threads=cpus)]
    if pick.num_workers == 0:
        pick = LoaderConfig(batch_size=pick.batch_size, num_workers=2, main_threads=1)
    for method in available_start_methods():
        for keep in (True, False) if persistent else (False,):
            config = pick.replace(multiprocessing_context=method, persistent_workers=keep)
            if config not in grid:
                grid.append(config)
    return grid


def _side_by_side(dataset: object, grid: list[LoaderConfig], epochs: int) -> dict:
    """Seconds for ``epochs`` epochs of each, in two interleaved rounds (the second in
    reverse order), the median; one more than twice the best so far is stopped there
    (``inf``) and not measured again."""
    seconds: dict[LoaderConfig, list[float]] = {config: [] for config in grid}
    for turn in range(2):
        for config in grid if turn == 0 else grid[::-1]:
            best = min((min(s) for s in seconds.values() if s), default=None)
            if seconds[config] and min(seconds[config]) > 2 * (best or math.inf):
                continue
            limit = None if best is None else 2 * best
            seconds[config].append(time_epochs(dataset, config, epochs=epochs, limit_s=limit))
    return {config: statistics.median(s) for config, s in seconds.items()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "persistent"),
    [
        (SlowToUnpickle(128, 0.003, unpickle=0.5), True),
        (SlowToUnpickle(128, 0.003, unpickle=0.5), False),
        (OpensPerProcess(128, 0.003, opening=0.3), True),
    ],
    ids=["unpickle-persistent", "unpickle-restarting", "opening-persistent"],
)
def test_workers_that_start_slowly_over_short_epochs(tmp_path, two_cpus, dataset, persistent):
    epochs = 3
    result = calibrate(
        dataset,
        batch_size=8,
        home=tmp_path,
        limits=two_cpus,
        max_workers=2,
        samples=8,
        epochs=epochs,
        persistent_workers=persistent,
    )
    chosen = result.chosen
    assert result.epochs == EpochPlan(epochs, 16, count_given=True, persistent=persistent)
    assert chosen.num_workers == 2
    assert chosen.persistent_workers or chosen.multiprocessing_context == "fork"
    assert chosen.persistent_workers is persistent
    assert result.restart is not None  # new and live workers, measured
    if isinstance(dataset, OpensPerProcess):
        # Every new worker opens the source again: live ones start an epoch far sooner.
        assert result.restart.startup_s > result.restart.live_startup_s + 0.2
    else:
        # Workers that unpickle their dataset start later than forked ones.
        started = {
            t.config.multiprocessing_context: t for t in result.candidates if t.config.num_workers
        }
        assert all(
            started[m].first_batch_s is None or started[m].first_batch_s > 0.5
            for m in ("spawn", "forkserver")
        )
        assert started["fork"].first_batch_s < 0.5
    grid = _grid(chosen, persistent, two_cpus.usable_cpus)
    seconds = _side_by_side(dataset, grid, epochs)
    best = min(seconds.values())
    assert best / seconds[chosen] >= 0.95, {c.describe(): s for c, s in seconds.items()}


@pytest.mark.slow
def test_a_loader_only_calibration_shows_its_budget_and_the_optimum_beyond_it(
    tmp_path, two_cpus
) -> None:
    from _datasets import Busy

    result = calibrate(Busy(4000, 0.001, width=8), batch_size=16, home=tmp_path, limits=two_cpus)
    assert result.mode == "loader"
    assert result.budget is not None
    assert (result.budget.cpus, result.budget.step_cpus, result.budget.step_measured) == (
        2,
        1,
        False,
    )
    # CPU-heavy loading on 2 CPUs: the budget allows one worker; the climb went on past it.
    over = [t for t in result.candidates if "over the CPU budget" in t.reason]
    assert over
    assert all(t.config.num_workers >= 2 for t in over)
    assert result.chosen.num_workers <= 1
    assert result.loader_only is not None
    found = result.loader_only
    assert found.searched
    if not found.is_choice:
        assert found.config.num_workers >= 2
    text = render_calibration(result)
    assert "CPU budget: 2 CPUs: 1 kept for the training step (no step given" in text
    assert "loader-only optimum (no CPU kept for a training step): " in text
    assert "paste: DataLoader(dataset, batch_size=16, num_workers=" in text
    # The run's epochs were not given: said once, with the flag and the argument.
    assert text.count("assumed") >= 1
    assert text.count("--epochs N (epochs=N in Python)") == 1
    assert f"  epochs: {DEFAULT_EPOCHS} assumed, the run's count not given" in text
    again = Calibration.from_json(json.loads(json.dumps(result.to_json())))
    assert again.to_json() == result.to_json()


def test_the_start_methods_tried_can_be_restricted(tmp_path) -> None:
    from _datasets import Waits
    from trainperf.calibration.api import calibrate
    from trainperf.errors import UsageError

    found = calibrate(
        Waits(64, 0.002),
        batch_size=8,
        force=True,
        persist=False,
        home=tmp_path,
        epochs=2,
        start_methods=("fork",),
    )
    methods = {t.config.multiprocessing_context for t in found.candidates}
    assert methods <= {None, "fork"}
    with pytest.raises(UsageError, match="none of the start methods nope is available here"):
        calibrate(
            Waits(64, 0.0),
            batch_size=8,
            force=True,
            persist=False,
            home=tmp_path,
            start_methods=("nope",),
        )


GUARDED = """\
import logging, torch
logging.basicConfig()
torch.manual_seed(0)
with open(__file__) as own:
    own.read()

def main():
    for _ in range(3):
        pass

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("source", "run", "expected"),
    [
        ("import time\nfor _ in range(3):\n    time.sleep(0)\n", "script", "a loop at s.py line 2"),
        ("def main():\n    pass\n\nmain()\n", "script", "a call at s.py line 4"),
        (
            "x = 1\nwith open(__file__) as f:\n    f.read()\n",
            "script",
            "a with block at s.py line 2",
        ),
        (GUARDED, "script", "None"),
        ("def main():\n    pass\n\nmain()\n", "module", "a call at s.py line 4"),
        ("for _ in range(3):\n    pass\n", "package", "None"),  # a package's __main__
        ("for _ in range(3):\n    pass\n", "inline", "None"),  # python -c
    ],
    ids=["loop", "bare-call", "with", "guarded", "dash-m", "package-main", "dash-c"],
)
def test_the_main_modules_work_a_spawned_worker_would_run_again(
    tmp_path, source, run, expected
) -> None:
    import subprocess
    import sys

    ask = "\nfrom trainperf.calibration.startmethod import main_module_work as w\nprint(w())\n"
    (tmp_path / "s.py").write_text(source + ask, encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "__main__.py").write_text(source + ask, encoding="utf-8")
    command = {
        "script": [sys.executable, "s.py"],
        "module": [sys.executable, "-m", "s"],
        "package": [sys.executable, "-m", "pkg"],
        "inline": [sys.executable, "-c", source + ask],
    }[run]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == expected


UNGUARDED_CALIBRATION = """\
import sys
from _datasets import Waits
from trainperf.calibration.api import calibrate

found = calibrate(Waits(64, 0.002), batch_size=8, force=True, persist=False,
                  home=sys.argv[1], epochs=2, max_workers=2)
for t in found.candidates:
    if t.config.multiprocessing_context in ("spawn", "forkserver"):
        print(t.config.multiprocessing_context, t.status, t.elapsed_s, t.reason)
"""


@pytest.mark.slow
def test_an_unguarded_script_is_not_run_again_in_spawned_workers(tmp_path) -> None:
    """A script calibrating at its top level: a spawn worker would import it and
    calibrate again in itself; the calibration says so instead of starting one."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "calibrate_here.py").write_text(UNGUARDED_CALIBRATION, encoding="utf-8")
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "calibrate_here.py", str(tmp_path / "home")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": tests},
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert {line.split()[0] for line in lines} == {"spawn", "forkserver"} & set(
        available_start_methods()
    )
    for line in lines:
        method, status, elapsed, reason = line.split(" ", 3)
        assert (status, float(elapsed)) == ("dropped", 0.0)
        assert reason.startswith(f"not started: a {method} worker imports the main module again")
        assert "(a loop at calibrate_here.py line 7)" in reason
