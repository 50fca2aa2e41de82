"""Step anatomy: stack classification inside real torch calls, a real sampled loop, exact
attribution of injected samples, GC pauses, and the record on disk."""

from __future__ import annotations

import gc
import importlib.util
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from trainperf.errors import RecordError, UsageError
from trainperf.monitoring.anatomy import (
    ANATOMY,
    DEFAULT_INTERVAL_S,
    AnatomyCapture,
    AnatomyRecord,
    GcPause,
    GcWatch,
    Phase,
    StackClassifier,
    StackSample,
    StackSampler,
    read_anatomy,
    write_anatomy,
)
from trainperf.monitoring.anatomy_analysis import (
    LineGrowth,
    StepAnatomy,
    line_growth,
    step_anatomy,
)
from trainperf.monitoring.records import Period

HERE = str(Path(__file__).resolve())


class Ticks:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def planted_line(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    lines = Path(HERE).read_text().splitlines()
    return next(n for n, text in enumerate(lines, start=1) if text.rstrip().endswith(marker))


@pytest.fixture(scope="module")
def classifier() -> StackClassifier:
    return StackClassifier.for_this_process()


def here(classifier: StackClassifier):
    """The classification of the caller's stack (this helper is user code too, so the
    innermost user frame is this line: callers compare the phase and the function)."""
    return classifier.classify(sys._getframe(1))


# -- classification, from inside real torch calls ------------------------------------------


def test_plain_user_code_is_loop(classifier) -> None:
    phase, file, line, function = classifier.classify(sys._getframe())
    assert (phase, file, function) == ("loop", HERE, "test_plain_user_code_is_loop")
    assert line == sys._getframe().f_lineno - 2


def test_a_module_forward_is_forward(classifier) -> None:
    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(here(classifier))
            return x

    seen: list = []
    Probe()(torch.ones(1))
    assert seen[0][0] == "forward"
    assert (seen[0][1], seen[0][3]) == (HERE, "forward")


def test_a_backward_hook_is_backward(classifier) -> None:
    seen: list = []

    def hook(grad):
        seen.append(here(classifier))
        return grad

    x = torch.ones(3, requires_grad=True)
    x.register_hook(hook)
    (x * 2).sum().backward()
    assert [(s[0], s[1], s[3]) for s in seen] == [("backward", HERE, "hook")]


def test_an_optimizer_step_is_optimizer(classifier) -> None:
    seen: list = []
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=0.1)
    opt.register_step_pre_hook(lambda *_: seen.append(here(classifier)))
    param.grad = torch.ones(2)
    opt.step()
    assert seen[0][0] == "optimizer"


def test_torch_save_is_checkpoint(classifier) -> None:
    seen: list = []

    class Pickled:
        def __reduce__(self):
            seen.append(here(classifier))
            return (int, (0,))

    torch.save({"weights": torch.ones(2), "extra": Pickled()}, io.BytesIO())
    assert [s[0] for s in seen] == ["checkpoint"]


def test_a_dataset_is_data_even_when_it_runs_a_module(classifier) -> None:
    seen: list = []

    class Resize(torch.nn.Module):
        def forward(self, x):
            seen.append(here(classifier))
            return x

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            seen.append(here(classifier))
            return Resize()(torch.ones(1) * i)

    list(torch.utils.data.DataLoader(Data(), batch_size=2))
    assert [s[0] for s in seen] == ["data", "data", "data", "data"]


def test_a_closure_inside_an_optimizer_step(classifier, tmp_path) -> None:
    """A closure's forward is forward and its own code optimizer time (LBFGS), but when
    a framework (site-packages, as Lightning) runs the user's step inside the closure, that
    step's own code is the user's loop."""
    folder = tmp_path / "lib" / "site-packages"
    folder.mkdir(parents=True)
    (folder / "framework.py").write_text("def call(f):\n    return f()\n")
    spec = importlib.util.spec_from_file_location("framework", folder / "framework.py")
    assert spec is not None
    assert spec.loader is not None
    framework = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(framework)

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(("forward", here(classifier)[0]))
            return x.sum()

    def closure():
        seen.append(("closure", here(classifier)[0]))
        return Probe()(param)

    def training_step():
        seen.append(("training_step", here(classifier)[0]))
        return Probe()(param)

    seen: list = []
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    opt = torch.optim.SGD([param], lr=0.1)
    opt.step(closure)
    opt.step(lambda: framework.call(training_step))
    assert seen == [
        ("closure", "optimizer"),
        ("forward", "forward"),
        ("training_step", "loop"),
        ("forward", "forward"),
    ]


def test_a_torch_decorator_around_the_loop_is_not_forward(classifier) -> None:
    @torch.no_grad()
    def evaluate():
        return here(classifier)

    assert evaluate()[0] == "loop"


def test_trainperf_s_own_thread_is_monitor(classifier) -> None:
    with StackSampler(thread_id=0, clock=time.perf_counter, origin=0.0, interval_s=60) as other:
        ident = next(t.ident for t in threading.enumerate() if t.name == "trainperf-anatomy")
        frame = sys._current_frames()[ident]
        assert classifier.classify(frame) == ("monitor", None, None, None)
    assert other.samples == []  # thread 0 does not exist: nothing sampled, nothing raised


def test_trainperf_calling_back_user_code_is_the_user_s(classifier) -> None:
    seen: list = []

    def clock() -> float:  # called by the sampler, trainperf code
        seen.append(here(classifier)[0])
        return 0.0

    StackSampler(thread_id=threading.get_ident(), clock=clock, origin=0.0).sample()
    assert seen == ["loop"]


def test_code_is_known_by_its_file(classifier) -> None:
    import trainperf

    def code(path: Path, function: str = "f"):
        return compile(f"def {function}(): pass", str(path), "exec").co_consts[0]

    torch_dir = Path(torch.__file__).parent
    ours = Path(trainperf.__file__).parent
    kinds = {
        "optimizer": code(torch_dir / "optim" / "sgd.py"),
        "data": code(torch_dir / "utils" / "data" / "dataloader.py"),
        "checkpoint": code(torch_dir / "serialization.py"),
        "backward": code(torch_dir / "autograd" / "__init__.py"),
        "module": code(torch_dir / "nn" / "modules" / "module.py"),
        "forward": code(torch_dir / "autograd" / "grad_mode.py"),
        "monitor": code(ours / "monitoring" / "hooks.py"),
        "user": code(ours / "examples" / "digits" / "train.py"),  # what is being diagnosed
        "library": code(Path(pytest.__file__)),
        "stdlib": code(Path(threading.__file__)),
    }
    assert {name: classifier.kind(c) for name, c in kinds.items()} == {n: n for n in kinds}
    assert classifier.kind(code(torch_dir / "_tensor.py", "backward")) == "backward"
    assert classifier.kind(code(torch_dir / "_tensor.py", "__repr__")) == "forward"
    assert classifier.kind(compile("x = 1", "<string>", "exec")) == "stdlib"
    assert classifier.kind(compile("x = 1", "<stdin>", "exec")) == "user"


# -- the sampler on a real loop --------------------------------------------------------------


def get_batch(x: torch.Tensor, i: int) -> torch.Tensor:
    time.sleep(0.001)  # planted: get_batch
    return x[i % 4 :: 4]


def test_a_real_loop_names_the_planted_line_first() -> None:
    """A tiny model and a per-step 5 ms "logging" line: the sampler, on this thread, ranks
    that line first among the loop's lines, above the whole forward pass."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    clock = time.perf_counter
    origin = clock()
    periods: list[Period] = []
    sampler = StackSampler(thread_id=threading.get_ident(), clock=clock, origin=origin)
    with sampler:
        # As many steps as it takes to have samples enough, however busy the machine is.
        while len(sampler.samples) < 60 and len(periods) < 5000:
            start = clock()
            batch = get_batch(x, len(periods))
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch), y[: len(batch)])
            loss.backward()
            opt.step()
            time.sleep(0.005)  # planted: logging
            end = clock()
            periods.append(Period("train", len(periods), 0, start - origin, end - start, 0.0, 16))
    assert sampler.error is None
    anatomy = step_anatomy(sampler_record(sampler), periods)
    top = anatomy.loop_lines[0]
    assert (top.file, top.line, top.function) == (
        HERE,
        planted_line("# planted: logging"),
        "test_a_real_loop_names_the_planted_line_first",
    )
    assert top.code == "time.sleep(0.005)  # planted: logging"
    assert top.share > anatomy.shares["forward"]
    assert top.share > anatomy.shares["backward"]
    batch_lines = [s for s in anatomy.loop_lines if s.function == "get_batch"]
    assert batch_lines[0].line == planted_line("# planted: get_batch")
    assert sum(anatomy.shares.values()) == pytest.approx(1.0)
    assert anatomy.samples + anatomy.outside_samples == len(sampler.samples)


def sampler_record(sampler: StackSampler) -> AnatomyRecord:
    return AnatomyRecord(
        interval_s=sampler.interval_s, samples=tuple(sampler.samples), gc_pauses=()
    )


def test_samples_are_thinned_evenly_past_the_cap() -> None:
    sampler = StackSampler(
        thread_id=threading.get_ident(), clock=Ticks(), origin=0.0, max_samples=4
    )
    for _ in range(10):
        sampler.sample()
    assert [s.t_s for s in sampler.samples] == [1.0, 5.0, 9.0]
    assert sampler.stride == 4
    assert {s.function for s in sampler.samples} == {"test_samples_are_thinned_evenly_past_the_cap"}


def test_a_bad_interval_says_so() -> None:
    with pytest.raises(UsageError, match="interval must be > 0 s, got 0"):
        StackSampler(thread_id=1, clock=time.perf_counter, origin=0.0, interval_s=0)


# -- GC pauses -----------------------------------------------------------------------------


def test_gc_callbacks_are_restored_and_a_collection_is_a_pause() -> None:
    before = list(gc.callbacks)
    with GcWatch(clock=Ticks(), origin=0.5) as watch:
        assert len(gc.callbacks) == len(before) + 1
        gc.collect()
    assert gc.callbacks == before
    assert all(a is b for a, b in zip(gc.callbacks, before, strict=True))
    full = [p for p in watch.pauses if p.generation == 2]
    assert len(full) == 1
    assert full[0].gc_s == 1.0  # one tick between the start and the stop callbacks
    assert all(p.gc_s == 1.0 for p in watch.pauses)


def test_the_capture_runs_both_and_stops_its_thread() -> None:
    before = list(gc.callbacks)
    capture = AnatomyCapture(
        thread_id=threading.get_ident(), clock=time.perf_counter, origin=time.perf_counter()
    )
    with capture:
        gc.collect()
    assert gc.callbacks == before
    assert "trainperf-anatomy" not in {t.name for t in threading.enumerate()}
    record = capture.record()
    assert any(p.generation == 2 and p.gc_s >= 0 for p in record.gc_pauses)
    assert record.interval_s == DEFAULT_INTERVAL_S


# -- attribution, exact ----------------------------------------------------------------------


def sample(
    t_s: float, phase: Phase, line: int | None = 7, function: str = "main", late_s: float = 0.0
) -> StackSample:
    return StackSample(t_s, phase, None if line is None else "train.py", line, function, late_s)


PERIODS = [
    Period("train", 0, 0, 0.0, 1.0, 0.25, 8),
    Period("train", 1, 0, 1.0, 1.0, 0.25, 8),
    Period("val", 0, 0, 2.0, 0.5, 0.5, 4),
]
RECORD = AnatomyRecord(
    interval_s=0.01,
    samples=(
        sample(0.1, "data", 3, "__getitem__"),
        sample(0.2, "loop", 7),
        sample(0.3, "forward", 5),
        sample(0.6, "backward", None),
        sample(1.0, "loop", 7),  # a step's start belongs to it
        sample(1.5, "backward", 6, late_s=0.002),  # waited 2 ms for the GIL
        sample(2.2, "forward", 5),  # validation
        sample(5.0, "loop", 9),  # after the last step
    ),
    gc_pauses=(GcPause(0.5, 0.25, 2), GcPause(2.1, 0.125, 0)),
    sources={
        ("train.py", 3): "return self.images[i]",
        ("train.py", 5): "out = model(x)",
        ("train.py", 6): "loss.backward()",
        ("train.py", 7): "log(loss.item())",
    },
)


def test_samples_and_pauses_are_attributed_to_their_step_exactly() -> None:
    anatomy = step_anatomy(RECORD, PERIODS)
    assert (anatomy.steps, anatomy.wall_s, anatomy.median_step_s) == (2, 2.0, 1.0)
    assert (anatomy.samples, anatomy.validation_samples, anatomy.outside_samples) == (6, 1, 1)
    # wall 2 s: data 0.5 (exact), gc 0.25 (exact), the rest 1.25 s over 5 non-data samples
    assert anatomy.shares == {
        "data": 0.25,
        "gc": 0.125,
        "forward": 0.125,
        "backward": 0.25,
        "optimizer": 0.0,
        "checkpoint": 0.0,
        "loop": 0.25,
        "monitor": 0.0,
    }
    assert anatomy.seconds_per_step == anatomy.shares  # the median step is 1 s
    assert (anatomy.gc_s, anatomy.gc_pauses) == (0.25, 1)
    assert anatomy.samples_by_phase["backward"] == 2
    assert anatomy.late_samples == 1
    assert [(s.phase, s.line, s.share, s.samples, s.code) for s in anatomy.lines] == [
        ("loop", 7, 0.25, 2, "log(loss.item())"),
        ("data", 3, 0.25, 1, "return self.images[i]"),  # data's lines share the data wait
        ("backward", 6, 0.125, 1, "loss.backward()"),  # its other sample had no user frame
        ("forward", 5, 0.125, 1, "out = model(x)"),
    ]
    assert [s.line for s in anatomy.loop_lines] == [7]
    assert StepAnatomy.from_json(anatomy.to_json()) == anatomy


def test_a_subset_of_steps_and_a_run_without_samples() -> None:
    second = step_anatomy(RECORD, PERIODS, steps=[1])
    assert (second.steps, second.samples, second.outside_samples) == (1, 2, 5)
    assert second.shares["data"] == 0.25
    assert second.shares["loop"] == second.shares["backward"] == 0.375
    empty = step_anatomy(AnatomyRecord(interval_s=0.01, samples=(), gc_pauses=()), PERIODS)
    assert empty.shares["unsampled"] == 0.75
    assert empty.lines == ()
    none = step_anatomy(RECORD, [])
    assert (none.steps, none.median_step_s, none.shares["loop"]) == (0, 0.0, 0.0)


def test_line_growth_compares_the_first_and_last_third() -> None:
    periods = [Period("train", i, 0, float(i), 1.0, 0.0, 8) for i in range(6)]
    samples = [sample(0.5, "loop", 7), sample(0.6, "forward", 5), sample(1.5, "forward", 5)]
    samples += [sample(1.6, "forward", 5), sample(2.5, "loop", 8)]  # step 2: the middle
    samples += [sample(4.5, "loop", 7), sample(4.6, "loop", 8), sample(5.5, "loop", 8)]
    samples += [sample(5.6, "loop", 7)]
    record = AnatomyRecord(interval_s=0.01, samples=tuple(samples), gc_pauses=())
    growth = line_growth(record, periods)
    assert [
        (g.line, g.first_share, g.last_share, g.first_samples, g.last_samples) for g in growth
    ] == [
        (8, 0.0, 0.5, 0, 2),
        (7, 0.25, 0.5, 1, 2),
    ]
    assert growth[0].growth == 0.5
    assert [LineGrowth.from_json(g.to_json()) for g in growth] == growth
    assert line_growth(record, periods[:2]) == []


# -- the record on disk ----------------------------------------------------------------------


def test_write_and_read_back(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text("import torch\nlog(loss.item())  \n")
    record = AnatomyRecord(
        interval_s=0.01,
        samples=(
            StackSample(0.25, "loop", str(script), 2, "main"),
            StackSample(0.5, "forward", "/elsewhere/model.py", 40, "forward", late_s=0.004),
            StackSample(0.75, "monitor", None, None, None),
        ),
        gc_pauses=(GcPause(0.125, 0.0625, 2),),
        stride=2,
    )
    path = write_anatomy(tmp_path, record)
    assert path == tmp_path / ANATOMY
    lines = path.read_text().splitlines()
    assert lines[0] == '{"schema_version": 1, "interval_s": 0.01, "stride": 2, "gc_dropped": 0}'
    assert (
        '{"t_s": 0.250000, "late_s": 0.000000, "phase": "loop", "file": "train.py", "line": 2, '
        '"function": "main"}'
    ) in lines
    back = read_anatomy(tmp_path)
    assert back is not None
    assert back.samples == (
        StackSample(0.25, "loop", "train.py", 2, "main"),
        *record.samples[1:],
    )
    assert back.gc_pauses == record.gc_pauses
    assert (back.interval_s, back.stride, back.sample_interval_s) == (0.01, 2, 0.02)
    assert back.source("train.py", 2) == "log(loss.item())"
    assert read_anatomy(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "is empty"),
        ("not json\n", ":1:"),
        ('{"anatomy": 99, "interval_s": 0.01}\n', "it has anatomy 99 and no schema_version"),
        ('{"schema_version": 99, "interval_s": 0.01}\n', "schema_version 99, written by a newer"),
        ('{"interval_s": 0.01}\n', "not a trainperf anatomy record (no schema_version)"),
        ('{"anatomy": 1, "interval_s": 0.01}\n{"t_s": "soon", "phase": "loop"}\n', ":2:"),
        ('{"anatomy": 1, "interval_s": 0.01}\n{"t_s": 1, "phase": "sleeping"}\n', "sleeping"),
        ('{"anatomy": 1, "interval_s": 0.01}\n[1, 2]\n', ":2:"),
    ],
)
def test_a_malformed_record_is_one_line_naming_the_file(tmp_path, text, where) -> None:
    (tmp_path / ANATOMY).write_text(text)
    with pytest.raises(RecordError) as caught:
        read_anatomy(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / ANATOMY) in message
    assert where in message
    assert "\n" not in message


def test_a_record_of_the_previous_release_is_read(tmp_path) -> None:
    (tmp_path / ANATOMY).write_text(
        '{"anatomy": 1, "interval_s": 0.01, "stride": 1, "gc_dropped": 0}\n'
        '{"gc_s": 0.5, "t_s": 1.0, "generation": 2}\n'
    )
    back = read_anatomy(tmp_path)
    assert back is not None
    assert back.gc_pauses == (GcPause(1.0, 0.5, 2),)


def test_the_anatomy_modules_import_no_torch() -> None:
    code = (
        "import sys, trainperf.monitoring.anatomy, trainperf.monitoring.anatomy_analysis\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stuck_sample_does_not_hold_the_program_at_its_exit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A program ending on an exception may hold what a sample waits for: stopping the
    sampler waits for it a bounded time, says so, and lets the program end."""
    from trainperf.monitoring import anatomy

    held = threading.Event()

    class Stuck(anatomy.StackSampler):
        def sample(self, late_s: float = 0.0) -> None:  # type: ignore[override]
            held.set()
            threading.Event().wait()  # what it waits for never comes

    monkeypatch.setattr(anatomy, "JOIN_TIMEOUT_S", 0.2)
    sampler = Stuck(thread_id=threading.get_ident(), clock=time.perf_counter, origin=0.0,
                    interval_s=0.001)  # fmt: skip
    sampler.start()
    assert held.wait(10)
    began = time.perf_counter()
    sampler.stop()
    assert time.perf_counter() - began < 5
    assert isinstance(sampler.error, TimeoutError)
    assert "did not stop within 0.2 s" in str(sampler.error)
