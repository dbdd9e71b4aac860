"""A time budget per answer for splitting and judging.

``Scorer.score`` opens a ``Budget`` for its batch (``ScoreConfig.answer_budget`` seconds per
answer). A splitter or judge that can stop early works on each answer inside
``answer_clock(response, stage)`` and asks ``clock.expired()`` between units of work (a batch of
sentences, a chunk of facts); when the clock has run out it stops, tells the clock what it left
(``clock.stop``), and the part left becomes ``unverifiable`` with reason ``over_budget``. The
answer's row records it under ``evidence["budget"]``. The other answers of the batch each have
their own clock, so one long answer never costs its batch.

The budget is counted on one of two clocks (``CLOCKS``): ``cpu``, the CPU seconds of the
scoring process (the default), or ``wall``, seconds of the wall clock. On a shared machine the
wall clock makes the verdicts depend on the load: with 4 s of wall clock and a load average of
about 20 on 2 cores, 9 of 16 FActScore ChatGPT biographies ran out of time; on the CPU clock
none did (the 16 took about 14 s of CPU time together, start-up aside). On the CPU clock an
answer gets the same verdicts however busy the machine is (up to the little CPU time that
contention adds), and a long answer still stops after a bounded amount of work (about the
budget in wall seconds on an idle core). Waiting (a knowledge source, an LLM server) is bounded by those
clients' own timeouts, not by the ``cpu`` clock.

The splitting stage may use ``SPLIT_SHARE`` of an answer's budget, so that some of it is always
left for judging; judging gets what splitting left. Outside ``Scorer.score`` (or with no budget)
the clock never runs out. Honoured by the ``atomic_facts`` splitter and the ``retrieval`` judge
(bio, med); the math and code judges bound each fragment with their own worker timeouts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

#: Seconds of splitting and judging per answer, by default. 16 FActScore ChatGPT biographies
#: (about 15 facts each) took about 14 s of CPU time together, so an ordinary answer uses, on
#: average, under a quarter of it.
DEFAULT_ANSWER_BUDGET = 4.0
#: Share of an answer's budget its splitting may use; judging gets the rest.
SPLIT_SHARE = 0.5
#: The stages a clock is opened for.
STAGES: tuple[str, ...] = ("split", "judge")
#: What a budget is counted in: CPU seconds of this process, or wall-clock seconds.
CLOCKS: dict[str, Any] = {"cpu": time.process_time, "wall": time.monotonic}
DEFAULT_CLOCK = "cpu"


def check_clock(kind: Any) -> str:
    """``kind`` if it names one of ``CLOCKS``.

    Raises:
        ValueError: It does not.
    """
    if kind not in CLOCKS:
        raise ValueError(f"budget clock must be one of {', '.join(CLOCKS)}, got {kind!r}")
    return kind


def check_budget(seconds: Any) -> float | None:
    """``None`` (no budget) or a finite number of seconds above 0, as a float.

    Raises:
        ValueError: Anything else (0, a negative number, NaN, Infinity, not a number).
    """
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"answer budget must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"answer budget must be a finite number of seconds above 0, got {seconds!r}")
    return float(seconds)


def parse_budget(value: Any) -> float | None:
    """A budget as a user writes it (``--answer-budget``, task metadata ``answer_budget``): a
    number of seconds (or its text), ``off``/``none`` for no limit, or absent (``None``) for the
    default.

    Raises:
        ValueError: Anything else.
    """
    if value is None:
        return DEFAULT_ANSWER_BUDGET
    if isinstance(value, str):
        if value.strip().lower() in ("off", "none"):
            return None
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        return check_budget(value)
    except ValueError:
        raise ValueError(f"answer budget must be a number of seconds above 0 or 'off', got {value!r}") from None


@dataclass(slots=True)
class AnswerClock:
    """One answer's budget: what is spent, and where work stopped for lack of time.

    Attributes:
        seconds: The answer's budget (``None``: no budget; the clock never runs out).
        clock: Which of ``CLOCKS`` counts it.
        spent: Seconds spent in finished stages.
        deadline: When the open stage must stop (``time.monotonic`` seconds), or ``None``.
        stops: Per stage stopped early: ``{"stage", ...what the stage left}``.
    """

    seconds: float | None = None
    clock: str = DEFAULT_CLOCK
    spent: float = 0.0
    deadline: float | None = None
    stops: list[dict[str, Any]] = field(default_factory=list)
    _started: float | None = None

    def expired(self) -> bool:
        """Whether the open stage has used up its share of the budget."""
        return self.deadline is not None and CLOCKS[self.clock]() >= self.deadline

    def stop(self, stage: str, **left: Any) -> None:
        """Record that ``stage`` stopped early, and what it left (``at=offset``,
        ``unjudged=count``, ``span=[a, b]``...)."""
        self.stops.append({"stage": stage, **left})

    def cut_span(self) -> tuple[int, int] | None:
        """The span the splitter left unsplit (``stop("split", span=[a, b])``), if any."""
        for s in self.stops:
            if s["stage"] == "split" and s.get("span"):
                return int(s["span"][0]), int(s["span"][1])
        return None

    def evidence(self) -> dict[str, Any] | None:
        """What a row records when the budget ran out (``None`` when it did not)."""
        if not self.stops:
            return None
        return {"seconds": self.seconds, "clock": self.clock, "spent_s": round(self.spent, 3),
                "stops": list(self.stops)}

    def _open(self, stage: str) -> None:
        self._started = CLOCKS[self.clock]()
        if self.seconds is None:
            self.deadline = None
            return
        left = self.seconds - self.spent
        if stage == "split":
            left = min(left, self.seconds * SPLIT_SHARE)
        self.deadline = self._started + max(0.0, left)

    def _close(self) -> None:
        if self._started is not None:
            self.spent += CLOCKS[self.clock]() - self._started
        self._started = self.deadline = None


class Budget:
    """The clocks of one batch, one per answer (keyed by the response object)."""

    def __init__(self, seconds: float | None, responses: Sequence[Any], clock: str = DEFAULT_CLOCK) -> None:
        self.seconds = seconds
        self._clocks = {id(r): AnswerClock(seconds, check_clock(clock)) for r in responses}
        self._keep = list(responses)  # the ids stay those of live objects

    def clock(self, response: Any) -> AnswerClock | None:
        return self._clocks.get(id(response))


_ACTIVE: ContextVar[Budget | None] = ContextVar("halt_eval_budget", default=None)


@contextmanager
def active(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` the one ``answer_clock`` finds (``Scorer.score`` does this)."""
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


def clock_of(response: Any) -> AnswerClock:
    """The clock of ``response`` as it stands (a stage opened by ``answer_clock`` keeps its
    deadline); outside a budget, a clock that never runs out."""
    budget = _ACTIVE.get()
    clock = budget.clock(response) if budget is not None else None
    return clock if clock is not None else AnswerClock()


@contextmanager
def answer_clock(response: Any, stage: str) -> Iterator[AnswerClock]:
    """The budget clock of ``response`` for one stage (``split`` or ``judge``).

    Outside a budget (no ``Scorer.score`` around, no budget set, or a response it does not
    score) the clock never runs out, so a splitter or judge can always use it.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown budget stage {stage!r}; known: {', '.join(STAGES)}")
    budget = _ACTIVE.get()
    clock = budget.clock(response) if budget is not None else None
    if clock is None:
        yield AnswerClock()
        return
    clock._open(stage)
    try:
        yield clock
    finally:
        clock._close()
