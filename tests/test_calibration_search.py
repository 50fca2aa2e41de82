"""The search's decisions, on candidates whose speed and start-up come from a table: the
budget and the loader-only optimum past it, start methods, start-up over short epochs,
and what is named as not measured. Exact, with no process started."""

from __future__ import annotations

import pytest

from trainperf.calibration.config import LoaderConfig
from trainperf.calibration.epochs import EpochPlan, Restart
from trainperf.calibration.search import Budget, SearchResult, search
from trainperf.calibration.trials import Trial, TrialPlan, warmup_batches

PLAN = TrialPlan(batches=16, chunk=4, timeout_s=60)


class Table:
    """Stands in for ``run_trial``: a candidate's steady rate from ``rates`` (by worker
    count, else ``rate(config)``), its start-up (seconds before the warm-up batches
    flow) from ``startup`` by start method; the loading process uses ``share`` CPU."""

    def __init__(
        self,
        rates: dict[int, float],
        *,
        share: float = 1.0,
        startup: dict[str, float] | None = None,
        method_rates: dict[str, float] | None = None,
    ) -> None:
        self.rates, self.share = rates, share
        self.startup = startup or {}
        self.method_rates = method_rates or {}
        self.calls: list[LoaderConfig] = []
        self.runs: list[LoaderConfig] = []  # timed over a whole run
        self.whole_s: dict[int, float] = {}  # a whole run's seconds, by worker count

    def __call__(
        self,
        dataset: object,
        config: LoaderConfig,
        plan: TrialPlan,
        *,
        keep: list[object] | None = None,
        startup_limit: tuple[float, str] | None = None,
        **_: object,
    ) -> Trial:
        self.calls.append(config)
        method = config.multiprocessing_context or ""
        rate = self.method_rates.get(method, self.rates[config.num_workers])
        start = self.startup.get(method, 0.0) if config.num_workers else 0.0
        if startup_limit is not None and start > startup_limit[0]:
            return Trial(config, "dropped", reason=f"no batch: {startup_limit[1]}")
        if keep is not None:
            keep.append(b"")
        batch_s = config.batch_size / rate
        return Trial(
            config,
            "measured",
            samples_per_s=rate,
            batches=plan.batches,
            cpu_share=self.share if config.num_workers == 0 else None,
            chunk_rates=(rate,) * 4,
            first_batch_s=start + batch_s,
            warmup_s=start + warmup_batches(config) * batch_s,
        )

    def whole(self, dataset: object, config: LoaderConfig, *, epochs: int, **_: object) -> float:
        """Stands in for ``time_epochs``: the run at the table's rate and start-ups."""
        method = config.multiprocessing_context or ""
        rate = self.method_rates.get(method, self.rates[config.num_workers])
        start = self.startup.get(method, 0.0) if config.num_workers else 0.0
        starts = 1 if config.persistent_workers else epochs
        self.runs.append(config)
        if config.num_workers in self.whole_s:
            return self.whole_s[config.num_workers]
        return epochs * len(dataset) / rate + start * starts  # type: ignore[arg-type]


def restart(dataset: object, config: LoaderConfig, **_: object) -> Restart:
    return Restart(0.5, 0.4, 0.02, 0.0, 2)


def run(
    monkeypatch: pytest.MonkeyPatch,
    table: Table,
    *,
    cpus: int = 2,
    max_workers: int = 16,
    epochs: EpochPlan | None = None,
    start_method: str = "fork",
    others: tuple[str, ...] = ("forkserver", "spawn"),
    step: object = None,
    samples: int = 4096,
) -> SearchResult:
    monkeypatch.setattr("trainperf.calibration.search.run_trial", table)
    monkeypatch.setattr("trainperf.calibration.search.measure_restart", restart)
    monkeypatch.setattr("trainperf.calibration.search.time_epochs", table.whole)
    return search(
        list(range(samples)),
        Budget(batch_size=32, cpus=cpus, max_workers=max_workers),
        PLAN,
        step=step,  # type: ignore[arg-type]
        clock=lambda: 0.0,
        epochs=epochs,
        start_method=start_method,  # type: ignore[arg-type]
        start_methods=others,  # type: ignore[arg-type]
    )


def test_loader_only_the_choice_keeps_a_cpu_for_the_step_and_the_optimum_is_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CPU-heavy loading on 2 CPUs: the budget affords one worker; 2-3 load faster.
    table = Table({0: 280.0, 1: 300.0, 2: 420.0, 3: 455.0, 4: 450.0, 6: 440.0})
    result = run(monkeypatch, table)
    assert result.winner is not None
    assert result.winner.config.num_workers == 1
    assert result.why == "fastest within the CPU budget: 300.0 samples/s"
    over = [t for t in result.trials if "over the CPU budget" in t.reason]
    assert [t.config.num_workers for t in over] == [2, 3, 4, 6]
    assert all(t in result.held_back for t in over)  # measured, never chosen
    assert result.loader_only is not None
    assert result.loader_only.config.num_workers == 3
    assert result.loader_only.samples_per_s == 455.0
    assert result.loader_only_searched
    assert result.loader_only_note == (
        "measured past the CPU budget up to num_workers=6, where 2 rungs brought no 5% gain"
    )
    assert result.skipped == [
        "num_workers 8, 12, 16: the climb past the CPU budget stopped, 2 rungs without a 5% gain"
    ]
    # The start methods were measured at the winner's worker count and, no faster, held.
    methods = [t for t in result.trials if t.config.multiprocessing_context != "fork"]
    assert [(t.config.num_workers, t.config.multiprocessing_context) for t in methods] == [
        (0, None),
        (1, "forkserver"),
        (1, "spawn"),
    ]
    assert all(t.reason == "not 3% faster than fork" for t in methods[1:])


def test_end_to_end_measures_one_rung_past_the_budget_and_no_loader_only_optimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = Table({0: 280.0, 1: 300.0, 2: 420.0, 3: 455.0})
    result = run(monkeypatch, table, step=lambda batch: None, others=())
    assert result.winner is not None
    assert result.winner.config.num_workers == 2  # the step left room: measured
    assert result.loader_only is None
    assert result.skipped == [
        "num_workers 3, 4, 6, 8, 12, 16: over the CPU budget (2 CPUs, 1 kept for the "
        "training step, 1.00 CPU per loading process)"
    ]


def test_max_workers_cuts_the_optimum_short_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    table = Table({0: 280.0, 1: 300.0})
    result = run(monkeypatch, table, max_workers=1, others=())
    assert result.skipped[0] == "num_workers 2, 3, 4, 6, 8, 12, 16: above max_workers=1"
    assert result.loader_only is not None
    assert not result.loader_only_searched
    assert result.loader_only_note == "not measured above max_workers=1"


def test_a_slow_start_method_loses_over_short_epochs_and_fork_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on Python 3.14: the default is forkserver, whose workers take 2 s to start; a
    # loader that waits (0.05 CPU), 3 epochs of 16 batches, workers start every epoch.
    table = Table(
        {0: 100.0, 2: 400.0, 4: 400.0, 8: 400.0},
        share=0.05,
        startup={"forkserver": 2.0, "spawn": 3.0, "fork": 0.05},
    )
    plan = EpochPlan(3, 16, persistent=False)
    result = run(
        monkeypatch, table, epochs=plan, start_method="forkserver", others=("fork", "spawn")
    )
    assert result.winner is not None
    assert result.winner.config.multiprocessing_context == "fork"
    assert result.winner.config.num_workers == 2
    # 1536 samples at 400/s, and 3 starts of 0.05 s.
    assert result.score(result.winner) == pytest.approx(1536 / (3.84 + 0.15))
    spawn = next(t for t in result.trials if t.config.multiprocessing_context == "spawn")
    assert spawn.status == "dropped"
    assert "the epoch of the fastest (fork, " in spawn.reason
    # The restart with live workers is measured for the choice, though not advised.
    assert result.restart == Restart(0.5, 0.4, 0.02, 0.0, 2)
    assert result.run_samples_per_s == pytest.approx(1536 / (3.84 + 0.15))


def test_with_persistent_workers_a_slow_start_is_paid_once(monkeypatch: pytest.MonkeyPatch) -> None:
    table = Table({0: 100.0, 2: 400.0, 4: 400.0, 8: 400.0}, share=0.05, startup={"forkserver": 2.0})
    plan = EpochPlan(30, 16, persistent=True)
    result = run(monkeypatch, table, epochs=plan, start_method="forkserver", others=("fork",))
    assert result.winner is not None
    # fork's 0 s start wins 2 s once over 30 epochs of 1.28 s: 5%, over the 3% tie.
    assert result.winner.config.multiprocessing_context == "fork"
    long = EpochPlan(300, 16, persistent=True)
    table = Table({0: 100.0, 2: 400.0, 4: 400.0, 8: 400.0}, share=0.05, startup={"forkserver": 2.0})
    result = run(monkeypatch, table, epochs=long, start_method="forkserver", others=("fork",))
    assert result.winner is not None
    assert result.winner.config.multiprocessing_context == "forkserver"  # 0.5%: a tie


def test_when_the_default_start_is_slow_fork_is_tried_first_and_the_climb_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.14 on Linux: forkserver by default, 1 s to start; 4 workers load fastest.
    table = Table({0: 100.0, 2: 400.0, 4: 800.0, 8: 800.0, 12: 800.0}, share=0.05)
    table.startup = {"forkserver": 1.0}
    plan = EpochPlan(3, 16, persistent=False)
    result = run(monkeypatch, table, epochs=plan, start_method="forkserver", others=("fork",))
    tried = [(c.num_workers, c.multiprocessing_context) for c in table.calls]
    assert tried[:3] == [(0, None), (2, "forkserver"), (2, "fork")]
    assert (4, "fork") in tried  # the climb went on under fork
    assert result.winner is not None
    assert (result.winner.config.num_workers, result.winner.config.multiprocessing_context) == (
        4,
        "fork",
    )
    # The default was tried again at the best worker count, and lost on its start.
    last = next(
        t
        for t in result.trials
        if t.config == result.winner.config.replace(multiprocessing_context="forkserver")
    )
    assert last.status == "dropped"


def test_workers_that_lose_only_on_their_start_get_another_start_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As on macOS: spawn by default (3 s to start), fork not offered; short epochs, workers
    # restarting: spawn's workers lose to loading in the training process, forkserver's win.
    table = Table({0: 300.0, 2: 600.0, 4: 600.0, 8: 600.0}, share=0.05)
    table.startup = {"spawn": 3.0, "forkserver": 0.05}
    plan = EpochPlan(3, 4, persistent=False)
    result = run(monkeypatch, table, epochs=plan, start_method="spawn", others=("forkserver",))
    assert result.winner is not None
    assert result.winner.config.multiprocessing_context == "forkserver"
    assert result.winner.config.num_workers == 2


def test_the_finalists_of_a_short_run_are_timed_over_all_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 3 epochs of 256 samples: well under RUN_CHECK_S. Once running, 4 workers are a
    # little faster; over the whole run, timed, 2 are (a start-up one trial misjudged).
    table = Table({0: 100.0, 2: 1000.0, 4: 1040.0, 8: 1040.0}, share=0.05)
    table.whole_s = {2: 0.80, 4: 0.90, 8: 0.95}
    plan = EpochPlan(3, 8, persistent=True)
    result = run(monkeypatch, table, epochs=plan, others=(), samples=256)
    assert result.winner is not None
    assert result.winner.config.num_workers == 2
    assert result.score(result.winner) == pytest.approx(768 / 0.80)
    # Two rounds, the order reversed in the second; finalists as advised (persistent).
    assert [(c.num_workers, c.persistent_workers) for c in table.runs] == [
        (4, True),
        (8, True),
        (2, True),
        (2, True),
        (8, True),
        (4, True),
    ]
    assert result.run_samples_per_s == pytest.approx(768 / 0.80)
    assert "(the finalists timed over all of it)" in result.why
