"""A monitored command that ends itself after a number of training steps.

Loaded by the start-up bootstrap when ``TRAINPERF_STOP_STEPS`` is set (``trainperf
ab`` sets it for each segment). At the limit the run's record is finished and the
process ends with exit code 0 (``os._exit``: a plain loop cannot be stopped
politely from inside its own step). The limit is acted on at the next DataLoader
fetch, so a loop without a DataLoader runs to its own end; the record then holds
one step more than the limit (the step in hand when it was reached), which
:func:`trainperf.monitoring.ab.segment_steps` leaves out.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.monitoring.session import Run

__all__ = ["STOP_STEPS_VARIABLE", "arm"]

STOP_STEPS_VARIABLE = "TRAINPERF_STOP_STEPS"


def arm(run: Run) -> None:
    """Make ``run`` (injected by the bootstrap) stop its process after the number of
    training steps in ``TRAINPERF_STOP_STEPS`` (a positive integer). Never raises:
    a bad value is one warning on stderr and the command runs to its end.

    Under torch.distributed with several ranks nothing is armed: one rank leaving on
    its own would leave the others blocked in a collective.
    """
    world = os.environ.get("WORLD_SIZE", "")
    if world.isdecimal() and int(world) > 1:
        return
    value = os.environ.get(STOP_STEPS_VARIABLE, "")
    if not value.isdecimal() or int(value) < 1:
        sys.stderr.write(
            f"trainperf: {STOP_STEPS_VARIABLE} must be a positive number of steps, got "
            f"{value!r}; running the command to its end\n"
        )
        return
    run.stop_steps = int(value)
    run.on_limit = lambda: _stop(run)


def _stop(run: Run) -> None:
    """At the limit: write the record, end the process."""
    try:
        run.__exit__(None, None, None)
    except BaseException as exc:  # whatever happens, the program ends here, as promised
        sys.stderr.write(f"trainperf: the run's record may be incomplete: {exc}\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
