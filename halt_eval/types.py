"""The typed core shared by every splitter, judge, metric and output.

Everything here is a frozen dataclass of plain values, so a scored response can be
serialized to JSON (``to_dict``) and read back by reports without any judge installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Label = Literal["correct", "incorrect", "unverifiable"]
LABELS: tuple[Label, ...] = ("correct", "incorrect", "unverifiable")
Domain = Literal["math", "code", "bio", "med"]
DOMAINS: tuple[Domain, ...] = ("math", "code", "bio", "med")
FragmentKind = Literal["independent", "dependent"]

#: Version of the serialized row format written by ``ScoredResponse.to_dict``.
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Response:
    """One model answer to be scored.

    Attributes:
        id: Stable identifier of the record (doc id, row id); names the record in errors.
        domain: Which domain's splitter and judge apply.
        prompt: The question the model answered.
        text: The model's full answer, including anything after an abstention marker.
        reference: Ground truth; fields depend on the domain (see the README).
        fragments: Optional pre-split fragments that bypass the splitter.
        task: The task name (``halt_math``), when known.
    """

    id: str
    domain: Domain
    prompt: str
    text: str
    reference: Mapping[str, Any] = field(default_factory=dict)
    fragments: tuple[str, ...] | None = None
    task: str = ""


@dataclass(frozen=True, slots=True)
class Piece:
    """What a splitter returns: a fragment's text and the span it came from.

    ``text`` may differ from ``answer[span[0]:span[1]]`` (an atomic fact with its subject
    made explicit); ``span`` always points into the answer.
    """

    text: str
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Fragment:
    """One scored unit of an answer.

    Attributes:
        index: 0-based position among the answer's fragments.
        text: The claim, step or line that is judged.
        span: Character offsets ``[start, end)`` into ``Response.text``.
        kind: ``independent`` (judged on its own) or ``dependent`` (wrong after the first error).
    """

    index: int
    text: str
    span: tuple[int, int]
    kind: FragmentKind


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's decision on one fragment, with the evidence that decided it.

    Attributes:
        label: ``correct``, ``incorrect`` or ``unverifiable`` (the judge could not tell;
            counts as not correct, but is never reported as wrong).
        judge: ``name@version`` of the judge that decided.
        reason: A short code from the judge's documented list (``equal``, ``timeout`` ...).
        explanation: One sentence for the reader of a report.
        evidence: JSON-safe details: the expression checked, the test log, the passage.
    """

    label: Label
    judge: str
    reason: str
    explanation: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"Verdict.label must be one of {LABELS}, got {self.label!r}")


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """One response and its fragments, as handed to a judge.

    Attributes:
        response: The response, with its full text.
        fragments: Its fragments (spans index into ``response.text``).
        marker_offset: Where the scorer's abstention marker cut the answer, or ``None``; the
            judged text is ``response.text[:marker_offset]``.
    """

    response: Response
    fragments: tuple[Fragment, ...]
    marker_offset: int | None = None

    @property
    def text(self) -> str:
        """The answer as given: the text before the abstention marker."""
        t = self.response.text
        return t if self.marker_offset is None else t[: self.marker_offset]


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judge's answer for one request.

    Attributes:
        verdicts: One verdict per fragment, same order.
        solved: For dependent domains, whether the answer fully solves the task (correct
            final answer; all tests pass). ``None`` when the judge does not decide it.
        coverage: For ``reference_recall`` completeness, one verdict per reference
            statement: ``correct`` when the answer covers it.
        evidence: Response-level evidence (the final-answer check, the whole test log).
        error: Set when the judge could not judge this response at all (bad input, a crash);
            the verdicts are then ``unverifiable``. Not for failures of the judged program.
    """

    verdicts: tuple[Verdict, ...]
    solved: bool | None = None
    coverage: tuple[Verdict, ...] | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@runtime_checkable
class Judge(Protocol):
    """The one judge protocol. Batch first: a single answer is a batch of one.

    ``judge`` must return one ``Judgement`` per request, in order, with one verdict per
    fragment. It must not raise over one bad answer: it returns ``unverifiable`` verdicts
    with a reason instead. Missing packages or sandboxes raise at construction.
    """

    name: str
    version: str

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]: ...


@runtime_checkable
class Splitter(Protocol):
    """Cuts answer texts (already cut at the abstention marker) into pieces. Batch first."""

    name: str
    version: str

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]: ...


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


@dataclass(frozen=True, slots=True)
class ScoredResponse:
    """A response with its fragments, verdicts and the counts the metrics come from.

    ``n_given``, ``n_correct``, ``correctness``, ``completeness`` and ``f1`` are properties,
    so they never disagree with the verdicts.

    Attributes:
        response: The scored response.
        fragments: Fragments before the abstention marker.
        verdicts: Final verdicts (after the dependent rule), one per fragment.
        abstained: Whether the answer declined: it holds an abstention marker or gives
            no fragment at all.
        n_desired: Fragments a complete answer needs (``None`` when unknown).
        solved: The judge's whole-task decision (dependent domains), if any.
        coverage: Per-reference-statement verdicts for ``reference_recall``, if used.
        marker_offset: Character offset of the abstention marker in the text, if any.
        evidence: Response-level evidence from the judge.
        error: Why the response could not be judged (bad input), if so.
    """

    response: Response
    fragments: tuple[Fragment, ...]
    verdicts: tuple[Verdict, ...]
    abstained: bool
    n_desired: int | None = None
    solved: bool | None = None
    coverage: tuple[Verdict, ...] | None = None
    marker_offset: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if len(self.fragments) != len(self.verdicts):
            raise ValueError(
                f"record {self.response.id!r}: {len(self.fragments)} fragments but "
                f"{len(self.verdicts)} verdicts"
            )

    @property
    def n_given(self) -> int:
        return len(self.fragments)

    @property
    def n_correct(self) -> int:
        return sum(v.label == "correct" for v in self.verdicts)

    @property
    def correctness(self) -> float | None:
        """Share of given fragments judged correct; ``None`` when nothing was given."""
        return self.n_correct / self.n_given if self.n_given else None

    @property
    def completeness(self) -> float | None:
        """Correct fragments against what a complete answer needs, capped at 1.

        A dependent-domain answer that fully solves the task scores 1, one that the judge
        found unsolved stays below 1; with ``reference_recall`` it is the share of reference
        statements covered. ``None`` when the needed count is unknown.
        """
        if self.solved and self.n_given:
            return 1.0
        if self.coverage is not None:
            return _ratio(sum(v.label == "correct" for v in self.coverage), len(self.coverage))
        if not self.n_desired:
            return None
        needed = self.n_desired
        if self.solved is False:
            # An answer that does not solve the task lacks at least one needed fragment, so it
            # stays below 1 even when it is longer than the reference.
            needed = max(needed, self.n_correct + 1)
        return min(1.0, self.n_correct / needed)

    @property
    def f1(self) -> float | None:
        """Harmonic mean of correctness and completeness (0 when both are 0).

        An empty answer (nothing given) has correctness undefined; its f1 is 0, as it
        contributes nothing of what a complete answer needs.
        """
        comp = self.completeness
        if comp is None:
            return None
        corr = self.correctness if self.correctness is not None else 0.0
        return _ratio(2 * corr * comp, corr + comp)

    def to_dict(self) -> dict[str, Any]:
        """Serialize to a JSON-safe row (``schema_version`` included)."""
        r = self.response
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": r.id,
            "task": r.task,
            "domain": r.domain,
            "prompt": r.prompt,
            "response": r.text,
            "reference": dict(r.reference),
            "fragments": [
                {
                    "index": f.index,
                    "text": f.text,
                    "span": list(f.span),
                    "kind": f.kind,
                    "verdict": v.label,
                    "reason": v.reason,
                    "explanation": v.explanation,
                    "evidence": dict(v.evidence),
                    "judge": v.judge,
                }
                for f, v in zip(self.fragments, self.verdicts)
            ],
            "abstained": self.abstained,
            "marker_offset": self.marker_offset,
            "n_given": self.n_given,
            "n_correct": self.n_correct,
            "n_desired": self.n_desired,
            "solved": self.solved,
            "correctness": self.correctness,
            "completeness": self.completeness,
            "f1": self.f1,
            "evidence": dict(self.evidence),
            "error": self.error,
        }
        if self.coverage is not None:
            row["coverage"] = [
                {"verdict": v.label, "reason": v.reason, "explanation": v.explanation,
                 "evidence": dict(v.evidence), "judge": v.judge}
                for v in self.coverage
            ]
        return row
