"""The one way judges combine: the embedded judge first, a fallback for what it could not decide.

``compose(embedded, fallback)`` is a judge. On each batch it runs ``embedded.judge``, then
``fallback.judge_undecided(batch, prior)`` with the embedded judgements, and keeps:

- every fragment verdict (and every coverage verdict) the embedded judge decided
  (``correct`` / ``incorrect``); the fallback's verdict for the rest;
- the embedded judge's response-level fields: ``solved``, ``evidence`` and ``error``.

A fallback whose ``overrides_decided`` is true (the LLM's ``code_first_error`` policy, which
re-localises the first wrong line of an answer whose tests fail) has all its verdicts taken.
The fallback decides whom to ask: it may leave a fragment as the embedded judge left it.

``spec()`` nests both judges' specs, so a scored row says which decided what; each verdict
names its own judge (``Verdict.judge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from halt_eval.types import Judge, Judgement, JudgeRequest, Verdict

__all__ = ["Composed", "Fallback", "compose"]

#: Labels that count as decided.
DECIDED = frozenset({"correct", "incorrect"})


@runtime_checkable
class Fallback(Protocol):
    """A judge that can be asked about what another judge left undecided."""

    name: str
    version: str

    def judge_undecided(self, batch: Sequence[JudgeRequest],
                        prior: list[Judgement]) -> list[Judgement]: ...


def compose(embedded: Judge, fallback: Fallback) -> Composed:
    """The judge that asks ``embedded`` first and ``fallback`` about what it left undecided."""
    if not callable(getattr(fallback, "judge_undecided", None)):
        raise TypeError(f"fallback judge {getattr(fallback, 'name', fallback)!r} has no "
                        f"judge_undecided(batch, prior)")
    return Composed(embedded, fallback)


def _spec(judge: Any) -> dict[str, Any]:
    spec = getattr(judge, "spec", None)
    if callable(spec):
        return dict(spec())
    return {"name": judge.name, "version": str(judge.version)}


class Composed:
    """``compose``'s judge. ``name`` is ``<embedded>+<fallback>``."""

    version = "1"

    def __init__(self, embedded: Judge, fallback: Fallback) -> None:
        self.embedded = embedded
        self.fallback = fallback
        self.name = f"{embedded.name}+{fallback.name}"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "options": {"overrides_decided": self._overrides()},
                "embedded": _spec(self.embedded), "fallback": _spec(self.fallback)}

    @property
    def stats(self) -> dict[str, int]:
        """The fallback's call counts (LLM requests, cache hits ...)."""
        stats = getattr(self.fallback, "stats", None)
        if stats is None:
            raise AttributeError("stats")
        return stats

    def close(self) -> None:
        for judge in (self.embedded, self.fallback):
            close = getattr(judge, "close", None)
            if callable(close):
                close()

    def _overrides(self) -> bool:
        return bool(getattr(self.fallback, "overrides_decided", False))

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]:
        batch = list(batch)
        prior = self.embedded.judge(batch)
        if len(prior) != len(batch):
            raise RuntimeError(f"judge {self.embedded.name} returned {len(prior)} judgements "
                               f"for {len(batch)} requests")
        later = self.fallback.judge_undecided(batch, prior)
        if len(later) != len(batch):
            raise RuntimeError(f"fallback judge {self.fallback.name} returned {len(later)} "
                               f"judgements for {len(batch)} requests")
        overrides = self._overrides()
        return [replace(p, verdicts=_merge(p.verdicts, f.verdicts, overrides),
                        coverage=_merge_coverage(p.coverage, f.coverage, overrides))
                for p, f in zip(prior, later)]


def _merge(prior: Sequence[Verdict], later: Sequence[Verdict], overrides: bool) -> tuple[Verdict, ...]:
    if len(later) != len(prior):
        raise RuntimeError(f"the fallback judge returned {len(later)} verdicts for "
                           f"{len(prior)} fragments")
    return tuple(f if overrides or p.label not in DECIDED else p for p, f in zip(prior, later))


def _merge_coverage(prior: Sequence[Verdict] | None, later: Sequence[Verdict] | None,
                    overrides: bool) -> tuple[Verdict, ...] | None:
    if later is None:
        return tuple(prior) if prior is not None else None
    if prior is None or len(prior) != len(later):
        return tuple(later)
    return _merge(prior, later, overrides)
