"""From responses to scored responses: marker cut, splitting, judging, the dependent rule.

A judge only judges. Abstention, the dependent rule and the counts live here, once, for
every domain.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from halt_eval import budget as _budget
from halt_eval.budget import DEFAULT_ANSWER_BUDGET, DEFAULT_CLOCK, Budget, check_budget, check_clock
from halt_eval.domains import Domain, get_domain
from halt_eval.reasoning import DEFAULT_DELIMITERS, check_mode, split_reasoning
from halt_eval.registry import spec_of
from halt_eval.rules import CAPABLE, apply_dependent_rule, parse_needed_mode
from halt_eval.split import DEFAULT_MARKERS, cut_at_marker, locate, strip_markers
from halt_eval.types import (
    Fragment,
    Judge,
    Judgement,
    JudgeRequest,
    Piece,
    Response,
    ScoredResponse,
    Splitter,
    Verdict,
)

log = logging.getLogger(__name__)

# Answers past this length are cut; the rest becomes one `unverifiable` fragment, so a
# runaway generation is neither dropped nor split into thousands of pieces.
MAX_ANSWER_CHARS = 100_000
#: The cut goes back to the last line break (else the last space) within this many characters
#: before the limit, so no line of code or word is cut in two.
CUT_LOOKBACK_CHARS = 1_000


def length_cut(text: str, limit: int) -> int:
    """Where an answer longer than ``limit`` is cut (``len(text)`` when it is not): just after
    the last line break before the limit, else after the last whitespace, within
    ``CUT_LOOKBACK_CHARS``; else at the limit."""
    if len(text) <= limit:
        return len(text)
    lo = max(0, limit - CUT_LOOKBACK_CHARS)
    at = text.rfind("\n", lo, limit)
    if at < 0:
        at = max(text.rfind(c, lo, limit) for c in (" ", "\t", "\r"))
    return at + 1 if at >= 0 else limit


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    """Scoring options shared by the CLI and the lm-eval tasks.

    Attributes:
        markers: Abstention marker phrases.
        n_desired: ``reference``, ``reference_recall``, ``fixed:K`` or ``capable`` (the
            needed count is set per prompt once all its samples are scored:
            ``halt_eval.capable``); ``None`` takes the domain's default.
        max_answer_chars: Answers are cut here (see ``MAX_ANSWER_CHARS``).
        reasoning: Which part of an answer with a reasoning span is scored: ``answer`` (what
            follows the span; default), ``reasoning`` (the span's inside) or ``keep`` (all of
            it); see ``halt_eval.reasoning``. A found span is recorded in the row's evidence
            under ``"reasoning"`` (mode, length in characters, closed, span).
        reasoning_delimiters: The span's opening and closing delimiters.
        natural_abstention: Also detect abstention in the model's own words ("I don't
            know", ...; ``halt_eval.abstain``) and record it in the row's evidence under
            ``"natural_abstention"``; ``abstained`` stays the marker's.
        answer_budget: Seconds of splitting and judging per answer (``halt_eval.budget``;
            ``None``: no limit). What a splitter or judge could not reach in time is one more
            ``unverifiable`` fragment (or verdict) with reason ``over_budget``, and the row's
            evidence records the budget under ``"budget"``.
        budget_clock: What the budget counts: ``cpu`` seconds of the process (the default; the
            verdicts do not depend on how busy the machine is) or ``wall`` seconds.
    """

    markers: tuple[str, ...] = DEFAULT_MARKERS
    n_desired: str | None = None
    max_answer_chars: int = MAX_ANSWER_CHARS
    reasoning: str = "answer"
    reasoning_delimiters: tuple[str, str] = DEFAULT_DELIMITERS
    natural_abstention: bool = False
    answer_budget: float | None = DEFAULT_ANSWER_BUDGET
    budget_clock: str = DEFAULT_CLOCK

    def __post_init__(self) -> None:
        check_mode(self.reasoning)
        check_budget(self.answer_budget)
        check_clock(self.budget_clock)
        if self.n_desired is not None:
            parse_needed_mode(self.n_desired)


@dataclass(slots=True)
class Scorer:
    """A splitter and a judge bound to a domain's rules.

    Build with ``Scorer.for_domain``; call ``score`` on batches.
    """

    domain: Domain
    splitter: Splitter
    judge: Judge
    config: ScoreConfig = field(default_factory=ScoreConfig)

    @classmethod
    def for_domain(
        cls,
        domain: str | Domain,
        *,
        judge: Judge | None = None,
        splitter: Splitter | None = None,
        config: ScoreConfig | None = None,
        judge_kwargs: Mapping[str, Any] | None = None,
        llm: Mapping[str, Any] | None = None,
    ) -> Scorer:
        """The domain's splitter and judge, unless given.

        Args:
            domain: A domain name (``math``, ``code``, ``bio``, ``med``, a plugin's name or
                ``module:ATTR``) or a ``Domain`` record.
            judge: A judge to use instead of the domain's.
            splitter: A splitter to use instead of the domain's.
            config: Marker and completeness options.
            judge_kwargs: Options for the domain's judge, on top of the record's own.
            llm: LLM judge options (``backend``, ``model``, ``base_url``, ``cache_path``,
                ``split``); with a backend other than ``none`` the LLM judge takes what the
                embedded judge could not decide (``halt_eval.judges.compose``).
        """
        from halt_eval.registry import get_judge, get_splitter

        record = get_domain(domain)
        judge = judge or get_judge(record.judge, **{**record.judge_kwargs, **(judge_kwargs or {})})
        splitter = splitter or get_splitter(record.splitter, **record.splitter_kwargs)
        if llm and llm.get("backend", "none") != "none":
            from halt_eval.judges.compose import compose
            from halt_eval.judges.llm import LLMFactSplitter, LLMJudge, LLMOptions

            options = LLMOptions.from_mapping(llm)
            if record.llm_policy is None:
                raise ValueError(f"domain {record.name!r} has no LLM judge policy")
            judge = compose(judge, LLMJudge(policy=record.llm_policy, options=options,
                                            **record.llm_policy_options))
            if options.split and record.llm_splitter:
                splitter = LLMFactSplitter(options=options)
        return cls(domain=record, splitter=splitter, judge=judge, config=config or ScoreConfig())

    def __post_init__(self) -> None:
        parse_needed_mode(self.n_desired_mode)  # a bad mode fails here, not on the first batch

    @property
    def n_desired_mode(self) -> str:
        return self.config.n_desired or self.domain.n_desired

    def spec(self) -> dict[str, Any]:
        """What decided the verdicts: the judge's and the splitter's specs, the domain and the
        completeness mode. Every scored row carries it."""
        spec = {"domain": self.domain.name, "judge": spec_of(self.judge),
                "splitter": spec_of(self.splitter), "n_desired": self.n_desired_mode,
                "markers": list(self.config.markers)}
        if self.config.natural_abstention:
            spec["natural_abstention"] = True
        return spec

    def score(self, responses: Sequence[Response]) -> list[ScoredResponse]:
        """Score a batch. Never raises over one bad response: it gets an ``error``.

        Each answer has its own time budget for splitting and judging
        (``ScoreConfig.answer_budget``), so one long answer never costs the others theirs.
        """
        whole, spans = self._without_reasoning(responses)
        # The length cap before anything else: the splitter and the judge see at most
        # ``max_answer_chars`` of an answer (the row keeps all of it; the rest is one
        # ``unverifiable`` fragment).
        limit = self.config.max_answer_chars
        responses = [r if len(r.text) <= limit else dataclasses.replace(r, text=r.text[:length_cut(r.text, limit)])
                     for r in whole]
        cuts = []
        for r, w in zip(responses, whole):
            cuts.append((cut_at_marker(r.text, self.config.markers), len(w.text) > limit))
        budget = Budget(self.config.answer_budget, responses, self.config.budget_clock)
        with _budget.active(budget):
            pieces = self._split(responses, [c.text for c, _ in cuts])
            late: list[Piece | None] = []
            for k, r in enumerate(responses):
                pieces[k], rest = _over_budget_piece(budget.clock(r), pieces[k])
                late.append(rest)
            requests = []
            for r, (cut, over), ps in zip(responses, cuts, pieces):
                frags = [Fragment(i, p.text, p.span, self.domain.kind) for i, p in enumerate(ps)]
                requests.append(JudgeRequest(r, tuple(frags), cut.marker_offset))
            missing = [_missing_fragment(req) for req in requests]
            judged = self._judge([req for req, m in zip(requests, missing) if m is None]) if any(
                m is None for m in missing) else []
        it = iter(judged)
        judgements = [next(it) if m is None else _bad_fragments(req, m) for req, m in zip(requests, missing)]
        desired = self._n_desired(whole)
        spec = self.spec()
        return [self._assemble(req, cut, over, judgement, n_des, spec, span, lt, budget.clock(req.response), w)
                for req, (cut, over), judgement, n_des, span, lt, w
                in zip(requests, cuts, judgements, desired, spans, late, whole)]

    def _without_reasoning(self, responses: Sequence[Response]):
        """The responses with the part ``config.reasoning`` names as their text, and per
        response the evidence about its reasoning span (``None`` when it has none)."""
        mode = self.config.reasoning
        if mode == "keep":
            return list(responses), [None] * len(responses)
        out, spans = [], []
        for r in responses:
            found = split_reasoning(r.text, self.config.reasoning_delimiters)
            if found.span is None:
                out.append(r)
                spans.append(None)
                continue
            text = found.answer if mode == "answer" else (found.reasoning or "")
            out.append(dataclasses.replace(r, text=text))
            spans.append(found.evidence(mode))
        return out, spans

    def _split(self, responses: Sequence[Response], texts: list[str]) -> list[list[Piece]]:
        todo = [i for i, r in enumerate(responses) if r.fragments is None and texts[i].strip()]
        result: list[list[Piece]] = [[] for _ in responses]
        for i, r in enumerate(responses):
            if r.fragments is not None:
                result[i] = locate(texts[i], _before_marker(r.fragments, self.config.markers))
        if todo:
            split = self.splitter.split([texts[i] for i in todo], [responses[i] for i in todo])
            for i, ps in zip(todo, split):
                result[i] = ps
        return result

    def _judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        try:
            return _checked(self.judge, requests, self.judge.judge(requests))
        except Exception as e:  # noqa: BLE001 - one bad answer must not sink the batch
            if getattr(e, "fatal", False):  # the judge itself is gone (JudgeUnavailable)
                raise
            if len(requests) == 1:
                return [_failed(self.judge, requests[0], traceback.format_exc(limit=5))]
            return [j for req in requests for j in self._judge([req])]

    def _n_desired(self, responses: Sequence[Response]) -> list[int | None]:
        mode, k = parse_needed_mode(self.n_desired_mode)
        if mode in ("reference_recall", CAPABLE):  # capable: set per prompt (halt_eval.capable)
            return [None] * len(responses)
        if mode == "fixed":
            return [k] * len(responses)
        limit = self.config.max_answer_chars
        texts: list[str] = []
        extra: list[int] = []
        for r in responses:
            ref = next((r.reference.get(k) for k in self.domain.reference_text
                        if isinstance(r.reference.get(k), str) and r.reference.get(k).strip()), None)
            if ref is not None:
                texts.append(ref[:length_cut(ref, limit)])
                extra.append(int(len(ref) > limit))
            else:
                # Without a reference answer, a complete answer is taken to be the whole given
                # answer (marker included), so completeness falls back to correctness unless
                # solved. The length cap holds here too: the part past it counts as the one
                # fragment it is scored as, and is never split.
                texts.append(strip_markers(r.text[:length_cut(r.text, limit)], self.config.markers))
                extra.append(int(len(r.text) > limit))
        pieces = self.splitter.split(texts, list(responses))
        return [(len(p) + x) or None for p, x in zip(pieces, extra)]

    def _assemble(self, req, cut, over, judgement: Judgement, n_desired, spec,
                  reasoning: Mapping[str, Any] | None = None, late: Piece | None = None,
                  clock: Any = None, whole: Response | None = None) -> ScoredResponse:
        r = whole if whole is not None else req.response  # the answer as given, uncut
        frags = list(req.fragments)
        verdicts = list(judgement.verdicts)
        if late is not None:  # the part the splitter had no time left for: one fragment, not judged
            frags.append(Fragment(len(frags), late.text, late.span, self.domain.kind))
            verdicts.append(Verdict(
                "unverifiable", "halt_eval", "over_budget",
                f"characters {late.span[0]}-{late.span[1]} were not split or judged: the answer's "
                f"{self.config.answer_budget:g}-second budget ({self.config.budget_clock} time) ran out",
            ))
        if over:
            limit = self.config.max_answer_chars
            at = length_cut(r.text, limit)
            frags.append(Fragment(len(frags), r.text[at:at + 200], (at, len(r.text)), self.domain.kind))
            verdicts.append(Verdict(
                "unverifiable", "halt_eval", "over_length",
                f"{len(r.text) - at} characters from character {at} were not judged (the "
                f"{limit}-character limit, cut at the line or word end before it)",
            ))
        if self.domain.kind == "dependent":
            verdicts = apply_dependent_rule(verdicts)
        abstained = cut.marker_offset is not None or not frags
        evidence = dict(judgement.evidence)
        if clock is not None and clock.evidence() is not None:
            evidence["budget"] = clock.evidence()
        if reasoning is not None:
            evidence["reasoning"] = reasoning
        if self.config.natural_abstention:
            from halt_eval.abstain import detect

            found = detect(r.text[: self.config.max_answer_chars])
            if found is not None:
                evidence["natural_abstention"] = found
        return ScoredResponse(
            response=r,
            fragments=tuple(frags),
            verdicts=tuple(verdicts),
            abstained=abstained,
            n_desired=n_desired,
            solved=judgement.solved,
            coverage=judgement.coverage,
            marker_offset=cut.marker_offset,
            evidence=evidence,
            error=judgement.error,
            judge_spec=spec,
            sample=r.sample,
        )


def _over_budget_piece(clock: Any, pieces: Sequence[Piece]) -> tuple[list[Piece], Piece | None]:
    """``pieces`` without the last one when it is the part the splitter left unsplit for lack
    of time (``AnswerClock.cut_span``), and that piece: the scorer records it, the judge never
    sees it."""
    span = clock.cut_span() if clock is not None else None
    if span is None or not pieces or tuple(pieces[-1].span) != span:
        return list(pieces), None
    return list(pieces[:-1]), pieces[-1]


def _before_marker(fragments: Sequence[str], markers: Sequence[str]) -> list[str]:
    """Pre-split fragments up to the abstention marker (the text before it in its fragment kept)."""
    kept = []
    for fragment in fragments:
        cut = cut_at_marker(fragment, markers)
        if cut.text.strip():
            kept.append(cut.text)
        if cut.marker_offset is not None:
            break
    return kept


def _missing_fragment(req: JudgeRequest) -> str | None:
    """Why the given fragments cannot be judged: one does not occur in the answer (in order)."""
    if req.response.fragments is None:
        return None
    for f in req.fragments:
        if f.text.strip() and f.span[0] == f.span[1]:
            return f"given fragment #{f.index} does not occur in the response (after the previous one): {f.text[:80]!r}"
    return None


def _bad_fragments(req: JudgeRequest, why: str) -> Judgement:
    log.warning("record %r: %s", req.response.id, why)
    v = Verdict("unverifiable", "halt_eval", "fragment_not_in_response", why)
    return Judgement(tuple(v for _ in req.fragments), error=why)


def _failed(judge: Judge, req: JudgeRequest, why: str) -> Judgement:
    log.warning("judge %s failed on record %r: %s", judge.name, req.response.id, why.splitlines()[-1])
    tag = f"{judge.name}@{judge.version}"
    v = Verdict("unverifiable", tag, "judge_error", "the judge failed on this answer",
                {"traceback": why})
    return Judgement(tuple(v for _ in req.fragments), error=why.splitlines()[-1])


def _checked(judge: Judge, requests: list[JudgeRequest], judgements: list[Judgement]) -> list[Judgement]:
    if len(judgements) != len(requests):
        raise RuntimeError(f"judge {judge.name} returned {len(judgements)} judgements "
                           f"for {len(requests)} requests")
    for req, j in zip(requests, judgements):
        if len(j.verdicts) != len(req.fragments):
            raise RuntimeError(f"judge {judge.name} returned {len(j.verdicts)} verdicts for "
                               f"{len(req.fragments)} fragments of record {req.response.id!r}")
    return judgements


def score(responses: Sequence[Response], *, config: ScoreConfig | None = None,
          judge: Judge | None = None, splitter: Splitter | None = None) -> list[ScoredResponse]:
    """Score responses of any mix of domains with each domain's default splitter and judge.

    Args:
        responses: The answers to score.
        config: Marker and completeness options.
        judge: Use this judge for every domain instead of the defaults.
        splitter: Use this splitter for every domain instead of the defaults.

    Returns:
        One ``ScoredResponse`` per response, in order.
    """
    by_domain: dict[str, list[int]] = {}  # domain name -> indices
    for i, r in enumerate(responses):
        by_domain.setdefault(r.domain, []).append(i)
    out: list[ScoredResponse | None] = [None] * len(responses)
    for domain, idx in by_domain.items():
        scorer = Scorer.for_domain(domain, judge=judge, splitter=splitter, config=config)
        for i, s in zip(idx, scorer.score([responses[i] for i in idx])):
            out[i] = s
    return out  # type: ignore[return-value]
