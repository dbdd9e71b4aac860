"""The typed core shared by every splitter, judge, metric and output.

Everything here is a frozen dataclass of plain values, so a scored response can be
serialized to JSON (``to_dict``) and read back by reports without any judge installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from halt_eval import rules

Label = Literal["correct", "incorrect", "unverifiable"]
LABELS: tuple[Label, ...] = ("correct", "incorrect", "unverifiable")
#: A domain name: a built-in one or any registered with ``halt_eval.domains``.
Domain = str
FragmentKind = Literal["independent", "dependent"]
KINDS: tuple[FragmentKind, ...] = ("independent", "dependent")

#: Version of the serialized row format written by ``ScoredResponse.to_dict``.
#: 2 added ``rules_version`` and ``judge_spec``; version-1 rows are still read.
SCHEMA_VERSION = 2


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
        sample: Index of this answer among several sampled for one prompt (``None``: one answer);
            the scored row carries it, and runs pair rows by ``(task, id, sample)``.
    """

    id: str
    domain: Domain
    prompt: str
    text: str
    reference: Mapping[str, Any] = field(default_factory=dict)
    fragments: tuple[str, ...] | None = None
    task: str = ""
    sample: int | None = None


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


class RowError(ValueError):
    """A serialized scored row that cannot be read; the message names the record and field."""


@dataclass(frozen=True, slots=True)
class ScoredResponse:
    """A response with its fragments, verdicts and the counts the metrics come from: THE one
    scored-row type, serialized by ``to_dict`` and read back by ``from_dict``.

    ``n_given``, ``n_correct``, ``correctness``, ``completeness`` and ``f1`` are properties
    computed by ``halt_eval.rules``, so they never disagree with the verdicts.

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
        rules_version: ``rules.RULES_VERSION`` of the rules the row was scored under
            (``"1"`` for rows written before it was recorded).
        judge_spec: The judge's ``spec()``: name, version, options (and the LLM backend and
            model when one is used); ``{}`` when not recorded.
        sample: Index of this answer among several sampled for one document (lm-eval
            ``repeats``); ``None`` for the only answer.
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
    rules_version: str = rules.RULES_VERSION
    judge_spec: Mapping[str, Any] = field(default_factory=dict)
    sample: int | None = None
    #: Counted once from the verdicts (the instance is frozen); not a field of the row.
    _n_correct: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if len(self.fragments) != len(self.verdicts):
            raise ValueError(
                f"record {self.response.id!r}: {len(self.fragments)} fragments but "
                f"{len(self.verdicts)} verdicts"
            )
        object.__setattr__(self, "_n_correct", rules.count_correct(
            [f.text for f in self.fragments], [v.label == "correct" for v in self.verdicts],
            self.response.domain))

    @property
    def n_given(self) -> int:
        return len(self.fragments)

    @property
    def n_correct(self) -> int:
        return self._n_correct

    @property
    def correctness(self) -> float | None:
        """Share of given fragments judged correct; ``None`` when nothing was given."""
        return rules.correctness(self.n_correct, self.n_given)

    @property
    def completeness(self) -> float | None:
        """Correct fragments against what a complete answer needs, capped at 1 (see
        ``rules.completeness``); ``None`` when the needed count is unknown. Under the
        needed-count mode ``capable`` the needed count is the prompt's ``n_capable``
        (``rules.completeness_capable``)."""
        if self.judge_spec.get("n_desired") == rules.CAPABLE:
            return rules.completeness_capable(self.n_correct, self.n_desired)
        covered = None
        if self.coverage is not None:
            covered = (sum(v.label == "correct" for v in self.coverage), len(self.coverage))
        return rules.completeness(self.n_correct, self.n_given, self.n_desired, self.solved, covered)

    @property
    def f1(self) -> float | None:
        """Harmonic mean of correctness and completeness (see ``rules.f1``)."""
        return rules.f1(self.correctness, self.completeness)

    def to_dict(self) -> dict[str, Any]:
        """Serialize to a JSON-safe row (``schema_version`` and ``rules_version`` included).

        The metric values are written for readers without halt-eval; ``from_dict`` recomputes
        them from the verdicts and checks that they agree.
        """
        r = self.response
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "rules_version": self.rules_version,
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
                    **_verdict_dict(v),
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
            "judge_spec": dict(self.judge_spec),
        }
        if self.coverage is not None:
            row["coverage"] = [_verdict_dict(v) for v in self.coverage]
        if self.sample is not None:
            row["sample"] = self.sample
        return row

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> ScoredResponse:
        """Rebuild a scored response from a serialized row (``to_dict``), checking every field.

        Rows of schema version 1 (no ``rules_version``, no ``judge_spec``) read as rules
        version ``"1"``. Metric values in the row (``correctness`` ...) are optional; NaN
        reads as null; under the current rules version they must agree with the verdicts.

        Args:
            d: The row.
            where: Names the row in errors (``file:line``); by default its ``id``.

        Raises:
            RowError: A field is missing, of the wrong type, or disagrees with the verdicts;
                the message starts with ``where`` and names the field.
        """
        return _row_from_dict(cls, d, where)



def _verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"verdict": v.label, "reason": v.reason, "explanation": v.explanation,
            "evidence": dict(v.evidence), "judge": v.judge}


class _Reader:
    """Typed field access on one row; every failure is a ``RowError`` naming ``where`` and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field_name: str, problem: str) -> RowError:
        prefix = f"{self.where}: " if self.where else ""
        return RowError(f"{prefix}field {field_name!r} {problem}")

    def get(self, d: Mapping[str, Any], key: str, types: type | tuple[type, ...], default: Any,
            name: str | None = None, *, required: bool = False, nullable: bool = False) -> Any:
        name = name or key
        if key not in d:
            if required:
                raise self.fail(name, "is missing")
            return default
        value = d[key]
        if value is None and nullable:
            return None
        wanted = types if isinstance(types, tuple) else (types,)
        # bool is an int in Python; a count or offset given as true/false is a mistake.
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            names = " or ".join(t.__name__ for t in wanted) + (" or null" if nullable else "")
            raise self.fail(name, f"must be {names}, got {value!r}"[:300])
        return value

    def verdict(self, d: Any, name: str) -> Verdict:
        # Fast path for a well-formed verdict (a run holds tens of thousands); anything odd
        # takes the checked path below, which names the field.
        if type(d) is dict and d.get("verdict") in LABELS:
            judge, reason, expl = d.get("judge", ""), d.get("reason", ""), d.get("explanation", "")
            ev = d.get("evidence")
            if (type(judge) is str and type(reason) is str and type(expl) is str
                    and (ev is None or type(ev) is dict)):
                return Verdict(d["verdict"], judge, reason, expl, dict(ev) if ev else {})
        if not isinstance(d, Mapping):
            raise self.fail(name, f"must be an object, got {type(d).__name__}")
        label = d.get("verdict")
        if label not in LABELS:
            prefix = f"{self.where}: " if self.where else ""
            raise RowError(f"{prefix}{name}.verdict must be one of {', '.join(LABELS)}, got {label!r}")
        return Verdict(
            label,
            self.get(d, "judge", str, "", f"{name}.judge"),
            self.get(d, "reason", str, "", f"{name}.reason"),
            self.get(d, "explanation", str, "", f"{name}.explanation"),
            dict(self.get(d, "evidence", Mapping, {}, f"{name}.evidence", nullable=True) or {}),
        )


def _row_from_dict(cls: type[ScoredResponse], d: Mapping[str, Any], where: str) -> ScoredResponse:
    if not isinstance(d, Mapping):
        raise RowError(f"{where + ': ' if where else ''}expected a JSON object, got {type(d).__name__}")
    if not where and d.get("id") is not None:
        where = f"record {str(d['id'])!r}"
    rd = _Reader(where)
    version = d.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise rd.fail("schema_version", f"is {version!r}, newer than this halt-eval reads "
                                        f"({SCHEMA_VERSION}); upgrade halt-eval")
    if d.get("id") is None:
        raise rd.fail("id", "is missing")
    text = d.get("response")
    if not isinstance(text, str):
        raise rd.fail("response", "is missing or not a string")
    response = Response(
        id=str(d["id"]),
        domain=rd.get(d, "domain", str, "", nullable=True) or "",
        prompt=rd.get(d, "prompt", str, "", nullable=True) or "",
        text=text,
        reference=dict(rd.get(d, "reference", Mapping, {}, nullable=True) or {}),
        task=rd.get(d, "task", str, "", nullable=True) or "",
    )
    raw = rd.get(d, "fragments", list, None, required=True)
    fragments, verdicts = [], []
    for i, f in enumerate(raw):
        name = f"fragments[{i}]"
        verdicts.append(rd.verdict(f, name))
        span = f.get("span")
        if not (isinstance(span, (list, tuple)) and len(span) == 2
                and type(span[0]) is int and type(span[1]) is int and 0 <= span[0] <= span[1]):
            prefix = f"{where}: " if where else ""
            raise RowError(f"{prefix}{name}.span must be [start, end], got {span!r}")
        kind = f.get("kind", "independent")
        if kind not in KINDS:
            raise rd.fail(f"{name}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        frag_text, index = f.get("text"), f.get("index", i)
        if not (frag_text is None or type(frag_text) is str):
            raise rd.fail(f"{name}.text", f"must be str, got {frag_text!r}"[:300])
        if type(index) is not int:
            raise rd.fail(f"{name}.index", f"must be int, got {index!r}"[:300])
        fragments.append(Fragment(index, text[span[0]:span[1]] if frag_text is None else frag_text,
                                  (span[0], span[1]), kind))
    coverage = rd.get(d, "coverage", list, None, nullable=True)
    marker_offset = rd.get(d, "marker_offset", int, None, nullable=True)
    rules_version = rd.get(d, "rules_version", (str, int), rules.UNRECORDED_RULES_VERSION)
    n_desired = rd.get(d, "n_desired", int, None, nullable=True)
    if n_desired is not None and n_desired < 0:
        raise rd.fail("n_desired", f"must not be negative, got {n_desired}")
    sample = rd.get(d, "sample", int, None, nullable=True)
    scored = cls(
        response=response,
        fragments=tuple(fragments),
        verdicts=tuple(verdicts),
        abstained=rd.get(d, "abstained", bool, marker_offset is not None or not fragments),
        n_desired=n_desired,
        solved=rd.get(d, "solved", bool, None, nullable=True),
        coverage=None if coverage is None else tuple(
            rd.verdict(v, f"coverage[{i}]") for i, v in enumerate(coverage)),
        marker_offset=marker_offset,
        evidence=dict(rd.get(d, "evidence", Mapping, {}, nullable=True) or {}),
        error=rd.get(d, "error", str, None, nullable=True),
        rules_version=str(rules_version),
        judge_spec=dict(rd.get(d, "judge_spec", Mapping, {}, nullable=True) or {}),
        sample=sample,
    )
    _check_stored_values(scored, d, rd)
    return scored


#: Metric values a row may carry, checked against the verdicts on read.
_STORED_VALUES = ("n_given", "n_correct", "correctness", "completeness", "f1")


def _check_stored_values(scored: ScoredResponse, d: Mapping[str, Any], rd: _Reader) -> None:
    """Stored values must be numbers (NaN = null); under the current rules they must equal the
    values the verdicts give (rows scored under other rules are not recomputed here)."""
    for key in _STORED_VALUES:
        if key not in d:
            continue
        value = d[key]
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise rd.fail(key, f"must be a number or null, got {value!r}"[:300])
        if isinstance(value, float) and value != value:  # NaN: undefined, written by lm-eval
            value = None
        if scored.rules_version != rules.RULES_VERSION:
            continue
        own = getattr(scored, key)
        if (value is None) != (own is None) or (
                value is not None and abs(float(value) - float(own)) > 1e-9):
            raise rd.fail(key, f"is {value!r} but the verdicts give {own!r} under rules "
                               f"version {rules.RULES_VERSION}")
