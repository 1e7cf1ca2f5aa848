"""Training on a time budget (``nac-hash train --time-budget 30m``).

The learning-rate schedule runs on the clock instead of the step counter: warm-up, then cosine decay to
zero as the budget's elapsed fraction goes from the warm-up fraction to 1. A slower machine, or one that is
busy with other work part of the time, therefore still ends its decay on time; it simply completes fewer
epochs. Before each epoch the run checks that the epoch, at the mean epoch time measured so far, fits in what
is left, and stops otherwise; the time the final evaluation will take is kept free at the end.
The clock's elapsed time is saved with the training state, so a resumed run
goes on from where the schedule stopped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

_UNITS = {"s": 1, "m": 60, "h": 3600}
PACE_EPOCHS = 20


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"1.5h"`` or a plain number of seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"time_budget must be a positive duration such as 90s, 30m or 2h, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


class BudgetClock:
    """Seconds spent against a budget, across resumes: ``elapsed`` = saved seconds + this session's.

    ``now`` reads the time (``time.perf_counter``); a test gives its own, so that what it checks does not
    depend on how fast the machine is.
    """

    def __init__(self, budget_s: float, now: Callable[[], float] = time.perf_counter) -> None:
        self.budget_s = budget_s
        self.now = now
        self._saved_s = 0.0
        self._started = now()
        self._epoch_s: list[float] = []
        self.reserve_s = 0.0  # kept free at the end for the final evaluation

    @property
    def training_s(self) -> float:
        return max(0.0, self.budget_s - self.reserve_s)

    def restore(self, elapsed_s: float) -> None:
        """Continue from a saved state's elapsed seconds (this session's time so far is kept)."""
        self._saved_s += elapsed_s

    @property
    def elapsed_s(self) -> float:
        return self._saved_s + self.now() - self._started

    def fraction(self) -> float:
        """Elapsed share of the budget, in [0, 1]."""
        return min(1.0, self.elapsed_s / max(self.training_s, 1e-9))

    def record_epoch(self, seconds: float) -> None:
        self._epoch_s.append(seconds)

    def mean_epoch_s(self) -> float | None:
        """Mean of the last ``PACE_EPOCHS`` epochs: the current pace, not that of a busier past.

        A session's first epoch is left out once a second is timed: it carries one-off costs (compiling the
        colour jitter takes seconds on a slow CPU), which would otherwise make a short run stop early.
        """
        recent = self._epoch_s[1:][-PACE_EPOCHS:] or self._epoch_s
        return sum(recent) / len(recent) if recent else None

    def fits_another_epoch(self) -> bool:
        """Whether one more epoch, at the mean measured epoch time, ends within the budget."""
        mean = self.mean_epoch_s()
        return self.elapsed_s + (mean or 0.0) <= self.training_s

    def epochs_left(self) -> int | None:
        """How many more epochs fit at the measured pace (None before the first epoch is timed)."""
        mean = self.mean_epoch_s()
        return None if mean is None else max(0, int((self.training_s - self.elapsed_s) / mean))
