"""The LLM judge and atomic-fact splitter, batched and cached, and the LLM flags of the CLI.

``LLMJudge(policy, options=...)`` judges alone (``judge``) or, composed after an embedded judge
(``halt_eval.judges.compose.compose(embedded, LLMJudge(...))``), decides what the embedded
judge could not (``judge_undecided``). Which policy a domain uses is in its domain record.
``LLMFactSplitter(options=...)`` splits answers into atomic facts. A judge and a splitter
built from the same options share one client: one cache file, one engine.

Policies (``POLICIES``):

- **claims**: only fragments the embedded judge left ``unverifiable`` go to the LLM, with the
  passages that judge retrieved (its verdict evidence ``passages``), else the reference's
  ``passages`` / ``must_have`` / ``nice_to_have``. With ``coverage=True`` (med), each
  ``must_have`` statement whose coverage verdict is ``unverifiable`` (or missing) is asked the
  same way with the answer as the text, and the reference ``answer`` is one more passage.
  ``not_enough_info`` stays ``unverifiable``.
- **math_first_error**: if the embedded judge left a step ``unverifiable`` before its own first
  ``incorrect`` step, the LLM gets the steps up to that point with the reference solution and
  names the first wrong one. Embedded decisions stand; the LLM only decides steps left
  ``unverifiable``: before its first error ``correct``, at it ``incorrect``, after it still
  ``unverifiable`` (the scorer's dependent rule then applies).
- **code_first_error**: when the embedded judge reports failing tests, the LLM gets the
  numbered lines and the test evidence and names the first wrong line, replacing the embedded
  localisation (lines before ``correct``, the line ``incorrect``, later lines
  ``unverifiable``); so this policy ``overrides_decided``. If the LLM answers ``null`` or
  cannot be parsed, the embedded verdicts stand with the LLM reply added as evidence.
- Alone (``judge``), the LLM judges every fragment (claims need passages in the reference).

Every LLM-decided verdict keeps the embedded verdict under ``evidence["inner"]`` and the raw
reply under ``evidence["llm"]["reply"]``. An unparseable reply gives ``unverifiable`` with
reason ``llm_unparseable``; a timeout ``llm_timeout``; any other failure ``llm_error``.
Reasons are listed in ``REASONS``.

Prompts are jinja2 templates in the package's ``prompts/<name>.v<version>.j2`` (read with
``importlib.resources``); ``TEMPLATES`` picks the version in use, and the version keys the
cache. Bump ``LLMJudge.version`` when the parsing or merging rules change.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from halt_eval.judges.llm_client import (
    LLMClient,
    LLMOptions,
    Prompt,
    Reply,
    make_client,
)
from halt_eval.types import Judgement, JudgeRequest, Piece, Response, Verdict

__all__ = ["LLMJudge", "LLMFactSplitter", "LLMOptions", "POLICIES", "add_cli_arguments",
           "options_from_args"]

log = logging.getLogger(__name__)

#: Package data: the prompt templates and the splitter's few-shot demos.
PROMPTS = resources.files("halt_eval.judges") / "prompts"
#: FActScore's sentence -> atomic facts demos (MIT, ``prompts/split_facts.demos.LICENSE``).
DEMOS_FILE = "split_facts.demos.json"
#: Template name -> version in use (file ``prompts/<name>.v<version>.j2``).
TEMPLATES: dict[str, str] = {
    "verify_claim": "1",
    "math_first_error": "1",
    "code_first_error": "1",
    "split_facts": "1",
}
#: Every reason code this module writes into a verdict.
REASONS: dict[str, str] = {
    "llm_supported": "the LLM found the claim supported by the passages",
    "llm_contradicted": "the LLM found the claim contradicted by the passages",
    "llm_not_enough_info": "the LLM found the passages silent on the claim",
    "llm_no_passages": "no passage to check the claim against; the LLM was not asked",
    "llm_no_error": "the LLM found no wrong step or line",
    "llm_before_first_error": "before the first wrong step or line named by the LLM",
    "llm_first_error": "the first wrong step or line named by the LLM",
    "llm_after_first_error": "after the LLM's first error; not judged on its own",
    "llm_unparseable": "the LLM's reply was not the JSON asked for (raw reply in evidence)",
    "llm_timeout": "the LLM server did not answer in time",
    "llm_error": "the LLM call failed (message in evidence)",
}
DEMONS_PATH_ENV = "HALT_FACTSCORE_DEMONS"
# Keep prompts inside a small model's context (SmolLM2: 2048 tokens here).
MAX_PASSAGES = 5
PASSAGE_CHARS = 600
REFERENCE_CHARS = 2500
TEST_REPORT_CHARS = 1500
REPLY_EVIDENCE_CHARS = 2000
# Claim and first-error replies are one short JSON object; facts lists are longer.
JUDGE_MAX_TOKENS = 128
SPLIT_MAX_TOKENS = 256


# Bounded so a reply always fits its token cap (a truncated reply is unparseable).
_EXPLANATION = {"type": "string", "maxLength": 300}
#: JSON schema of each template's reply, sent for constrained decoding (``structured``).
SCHEMAS: dict[str, dict[str, Any]] = {
    "verify_claim": {"type": "object", "properties": {
        "label": {"enum": ["supported", "contradicted", "not_enough_info"]},
        "passage": {"type": ["integer", "null"]}, "explanation": _EXPLANATION},
        "required": ["label", "passage", "explanation"], "additionalProperties": False},
    "math_first_error": {"type": "object", "properties": {
        "first_error_step": {"type": ["integer", "null"]}, "explanation": _EXPLANATION},
        "required": ["first_error_step", "explanation"], "additionalProperties": False},
    "code_first_error": {"type": "object", "properties": {
        "first_error_line": {"type": ["integer", "null"]}, "explanation": _EXPLANATION},
        "required": ["first_error_line", "explanation"], "additionalProperties": False},
    "split_facts": {"type": "object", "properties": {
        "facts": {"type": "array", "maxItems": 12,
                  "items": {"type": "string", "maxLength": 120}}},
        "required": ["facts"], "additionalProperties": False},
}

# ----------------------------------------------------------------------------- templates


@lru_cache(maxsize=None)
def _template(name: str) -> Any:
    import jinja2  # a core dependency, imported when the first prompt is rendered

    def load(template: str) -> str:
        return (PROMPTS / template).read_text(encoding="utf-8")

    env = jinja2.Environment(loader=jinja2.FunctionLoader(load),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                             autoescape=False)
    return env.get_template(f"{name}.v{TEMPLATES[name]}.j2")


def render(name: str, **variables: Any) -> tuple[dict[str, str], ...]:
    """Chat messages (system, user) rendered from template ``name``."""
    tmpl = _template(name)
    ctx = tmpl.new_context(variables)
    system = "".join(tmpl.blocks["system"](ctx)).strip()
    ctx = tmpl.new_context(variables)
    user = "".join(tmpl.blocks["user"](ctx)).strip()
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


def template_tag(name: str) -> str:
    return f"{name}@{TEMPLATES[name]}"


# ------------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.S)


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """The reply as a JSON object, or ``None``.

    Strict: after stripping whitespace and one optional Markdown code fence, the whole reply
    must be exactly one JSON object. Prose around it makes the reply unparseable.
    """
    if text is None:
        return None
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return None
    if body[end:].strip() or not isinstance(value, dict):
        return None
    return value


def _parse_claim(obj: dict[str, Any] | None, n_passages: int) -> dict[str, Any] | None:
    if obj is None or obj.get("label") not in ("supported", "contradicted", "not_enough_info"):
        return None
    passage = obj.get("passage")
    if passage is not None and not (isinstance(passage, int) and not isinstance(passage, bool)
                                    and 1 <= passage <= n_passages):
        return None
    return {"label": obj["label"], "passage": passage,
            "explanation": str(obj.get("explanation", ""))[:500]}


def _parse_first_error(obj: dict[str, Any] | None, field_name: str, n: int) -> dict | None:
    if obj is None or field_name not in obj:
        return None
    value = obj[field_name]
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                  and 1 <= value <= n):
        return None
    return {field_name: value, "explanation": str(obj.get("explanation", ""))[:500]}


def _parse_facts(obj: dict[str, Any] | None) -> list[str] | None:
    if obj is None or not isinstance(obj.get("facts"), list):
        return None
    facts = [f.strip() for f in obj["facts"] if isinstance(f, str) and f.strip()]
    return facts if facts or obj["facts"] == [] else None


# ------------------------------------------------------------------------------- helpers


def _passages_from(evidence: Mapping[str, Any] | None) -> list[str]:
    """Passage texts an embedded judge recorded (``passages``/``passage``/``retrieved``)."""
    if not evidence:
        return []
    out: list[str] = []
    for key in ("passages", "retrieved", "passage"):
        value = evidence.get(key)
        items = value if isinstance(value, (list, tuple)) else [value] if value else []
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping):
                text = item.get("text") or item.get("passage")
                if isinstance(text, str):
                    out.append(text)
        if out:
            return out
    return out


def _reference_passages(response: Response, *, with_answer: bool) -> list[str]:
    ref = response.reference
    out: list[str] = []
    for key in ("passages", "must_have", "nice_to_have"):
        value = ref.get(key)
        if isinstance(value, (list, tuple)):
            out += [v for v in value if isinstance(v, str) and v.strip()]
    if with_answer and isinstance(ref.get("answer"), str) and ref["answer"].strip():
        out.append(ref["answer"])
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _topic(response: Response) -> str:
    topic = response.reference.get("topic")
    return topic if isinstance(topic, str) else ""


def _inner_dict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"judge": v.judge, "label": v.label, "reason": v.reason,
            "explanation": v.explanation, "evidence": dict(v.evidence)}


@dataclass(frozen=True, slots=True)
class _Ask:
    """One prompt of a batch and how its reply is applied."""

    request: int
    prompt: Prompt
    apply: Callable[[Reply], None]


# ------------------------------------------------------------------------------- the judge


#: Policy name -> the templates it uses (see the module docstring for what each decides).
POLICIES: dict[str, tuple[str, ...]] = {
    "claims": ("verify_claim",),
    "math_first_error": ("math_first_error",),
    "code_first_error": ("code_first_error",),
}


class LLMJudge:
    """Judges fragments with an LLM: alone (``judge``) or after an embedded judge
    (``judge_undecided``, through ``halt_eval.judges.compose.compose``).

    Args:
        policy: What the LLM is asked and how its replies become verdicts: ``claims`` (each
            claim against passages), ``math_first_error`` or ``code_first_error`` (the first
            wrong step or line). ``POLICIES`` lists them.
        options: ``LLMOptions`` (or a mapping for ``LLMOptions.from_mapping``); ignored when
            ``client`` is given.
        client: A ready client; by default the one of any live judge or splitter built from
            the same options (one cache, one engine).
        coverage: ``claims`` only: also ask whether the answer covers each of the reference's
            ``must_have`` statements (``reference_recall`` completeness), and show the
            reference ``answer`` among the passages.

    Raises:
        ValueError: Unknown policy, ``coverage`` with another policy, ``backend="none"``, or a
            missing model/URL.
        RuntimeError: ``backend="vllm"`` without vllm installed (the message names the fix).
    """

    name = "llm"
    version = "1"

    def __init__(self, policy: str = "claims", *, options: LLMOptions | Mapping[str, Any] | None = None,
                 client: LLMClient | None = None, coverage: bool = False) -> None:
        if policy not in POLICIES:
            raise ValueError(f"LLMJudge policy must be one of {', '.join(POLICIES)}; got {policy!r}")
        if coverage and policy != "claims":
            raise ValueError(f"LLMJudge coverage applies to the claims policy only, not {policy!r}")
        if client is None:
            client = _client_for(options)
        self.policy = policy
        self.coverage = coverage
        self.client = client
        self.tag = f"{self.name}@{self.version}"

    @property
    def overrides_decided(self) -> bool:
        """Whether ``compose`` takes this judge's verdicts even where the embedded judge
        decided: ``code_first_error`` re-localises the first wrong line of a failing answer."""
        return self.policy == "code_first_error"

    @property
    def stats(self) -> dict[str, int]:
        """LLM calls (``requests``), cache hits, errors ... since the client was built."""
        return self.client.stats.as_dict()

    def spec(self) -> dict[str, Any]:
        """What a run records: name, version, policy, backend, model, templates and the LLM
        options (no secret: the API key stays in the environment)."""
        return {"name": self.name, "version": self.version,
                "options": {"policy": self.policy, "coverage": self.coverage},
                "backend": self.client.backend, "model": self.client.options.model,
                "templates": {k: template_tag(k) for k in POLICIES[self.policy]},
                "llm": _spec_options(self.client.options)}

    # -- the protocol

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]:
        """Judge every fragment with the LLM alone. All prompts of the batch go out in one call."""
        batch = list(batch)
        return self._run(batch, [None] * len(batch))

    def judge_undecided(self, batch: Sequence[JudgeRequest],
                        prior: Sequence[Judgement]) -> list[Judgement]:
        """Judge what the embedded judge's ``prior`` judgements left undecided (the policy says
        which fragments those are); decided verdicts are returned as they were."""
        batch = list(batch)
        if len(prior) != len(batch):
            raise RuntimeError(f"{len(prior)} prior judgements for {len(batch)} requests")
        return self._run(batch, list(prior))

    def _run(self, batch: list[JudgeRequest], inner: list[Judgement | None]) -> list[Judgement]:
        # Mutable working copies, filled by the asks' apply callbacks.
        verdicts: list[list[Verdict | None]] = []
        coverage: list[list[Verdict] | None] = []
        for req, j in zip(batch, inner):
            verdicts.append(list(j.verdicts) if j is not None else [None] * len(req.fragments))
            coverage.append(list(j.coverage) if j is not None and j.coverage is not None
                            else None)
        asks: list[_Ask] = []
        plan = {"claims": self._plan_claims, "math_first_error": self._plan_math,
                "code_first_error": self._plan_code}[self.policy]
        for i, (req, j) in enumerate(zip(batch, inner)):
            asks += plan(i, req, j, verdicts[i], coverage)
        if asks:
            replies = self.client.complete([a.prompt for a in asks])
            for ask, reply in zip(asks, replies):
                ask.apply(reply)
        out = []
        for req, j, vs, cov in zip(batch, inner, verdicts, coverage):
            missing = [k for k, v in enumerate(vs) if v is None]
            if missing:  # a plan bug, never a silent hole
                raise RuntimeError(f"LLMJudge left fragments {missing} of record "
                                   f"{req.response.id!r} without a verdict")
            out.append(Judgement(
                verdicts=tuple(vs),  # type: ignore[arg-type]
                solved=j.solved if j is not None else None,
                coverage=tuple(cov) if cov is not None else None,
                evidence=dict(j.evidence) if j is not None else {},
                error=getattr(j, "error", None),  # the inner judge's response-level failure
            ))
        return out

    # -- shared pieces

    def _llm_evidence(self, reply: Reply, template: str, parsed: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"model": reply.key.model, "template": template_tag(template)}
        if reply.text is not None:
            ev["reply"] = _clip(reply.text, REPLY_EVIDENCE_CHARS)
        if parsed is not None:
            ev["parsed"] = parsed
        if reply.error is not None:
            ev["error"] = reply.error
            ev["error_kind"] = reply.error_kind
        return ev

    def _failure(self, reply: Reply, template: str, inner: Verdict | None) -> Verdict:
        """The verdict for an LLM error or an unparseable reply."""
        if reply.error is not None:
            reason = "llm_timeout" if reply.error_kind == "timeout" else "llm_error"
            expl = f"the LLM call failed: {_clip(reply.error, 200)}"
        else:
            reason, expl = "llm_unparseable", "the LLM's reply was not the JSON asked for"
        ev = {"llm": self._llm_evidence(reply, template, None)}
        if inner is not None:
            ev["inner"] = _inner_dict(inner)
        return Verdict("unverifiable", self.tag, reason, expl, ev)

    def _prompt(self, template: str, max_tokens: int, **variables: Any) -> Prompt:
        return Prompt(render(template, **variables), self.tag, template_tag(template), max_tokens,
                      SCHEMAS[template])

    # -- claims (bio, med)

    def _claim_ask(self, i: int, claim: str, passages: list[str], topic: str, source: str,
                   inner: Verdict | None, store: Callable[[Verdict], None]) -> _Ask:
        passages = [_clip(p, PASSAGE_CHARS) for p in passages[:MAX_PASSAGES]]
        prompt = self._prompt("verify_claim", JUDGE_MAX_TOKENS, claim=claim, passages=passages,
                              topic=topic, source=source)

        def apply(reply: Reply) -> None:
            parsed = _parse_claim(parse_json_object(reply.text), len(passages))
            if reply.error is not None or parsed is None:
                store(self._failure(reply, "verify_claim", inner))
                if parsed is None and reply.error is None and not reply.cached:
                    self.client.cache.set_parsed(reply.key, {"unparseable": True})
                return
            if not reply.cached:
                self.client.cache.set_parsed(reply.key, parsed)
            label = {"supported": "correct", "contradicted": "incorrect",
                     "not_enough_info": "unverifiable"}[parsed["label"]]
            ev: dict[str, Any] = {"llm": self._llm_evidence(reply, "verify_claim", parsed),
                                  "passages": passages}
            if inner is not None:
                ev["inner"] = _inner_dict(inner)
            store(Verdict(label, self.tag, f"llm_{parsed['label']}",
                          parsed["explanation"] or REASONS[f"llm_{parsed['label']}"], ev))

        return _Ask(i, prompt, apply)

    def _plan_claims(self, i: int, req: JudgeRequest, j: Judgement | None,
                     vs: list[Verdict | None], coverage: list[list[Verdict] | None]) -> list[_Ask]:
        r = req.response
        asks = []
        ref_passages = _reference_passages(r, with_answer=self.coverage)
        for k, frag in enumerate(req.fragments):
            inner_v = vs[k]
            # Decided facts stay; so do facts past the answer's budget or fact cap (bounded work).
            if inner_v is not None and (inner_v.label != "unverifiable" or inner_v.reason == "over_budget"):
                continue
            passages = _passages_from(inner_v.evidence if inner_v else None) or ref_passages
            if not passages:
                vs[k] = Verdict("unverifiable", self.tag, "llm_no_passages",
                                REASONS["llm_no_passages"],
                                {"inner": _inner_dict(inner_v)} if inner_v else {})
                continue
            asks.append(self._claim_ask(i, frag.text, passages, _topic(r), "passages", inner_v,
                                        lambda v, k=k: vs.__setitem__(k, v)))
        # Med completeness (reference_recall): does the answer cover each must-have statement?
        cov = coverage[i]
        statements = r.reference.get("must_have")
        # The answer as given: nothing after the abstention marker counts towards coverage.
        answer = getattr(req, "text", r.text)
        if self.coverage and isinstance(statements, (list, tuple)) and answer.strip():
            if j is None or j.coverage is None:
                cov = coverage[i] = [Verdict("unverifiable", self.tag, "llm_error", "not asked")
                                     for _ in statements]
            if len(cov) == len(statements):
                for k, statement in enumerate(statements):
                    inner_v = cov[k] if j is not None and j.coverage is not None else None
                    if inner_v is not None and inner_v.label != "unverifiable":
                        continue
                    asks.append(self._claim_ask(i, str(statement), [answer], r.prompt,
                                                "answer", inner_v,
                                                lambda v, k=k, cov=cov: cov.__setitem__(k, v)))
        return asks

    # -- math

    def _plan_math(self, i: int, req: JudgeRequest, j: Judgement | None,
                   vs: list[Verdict | None], coverage: Any) -> list[_Ask]:
        n = len(req.fragments)
        if n == 0:
            return []
        # Only steps up to the inner judge's first error can change; the rest are decided.
        first_inner = next((k for k, v in enumerate(vs) if v is not None and v.label == "incorrect"), n)
        upto = min(n, first_inner + 1)
        if not any(v is None or v.label == "unverifiable" for v in vs[:first_inner]):
            for k in range(n):  # nothing left for the LLM
                if vs[k] is None:
                    vs[k] = Verdict("unverifiable", self.tag, "llm_after_first_error",
                                    REASONS["llm_after_first_error"])
            return []
        ref = req.response.reference
        steps = [f.text for f in req.fragments[:upto]]
        prompt = self._prompt(
            "math_first_error", JUDGE_MAX_TOKENS, problem=req.response.prompt, steps=steps,
            reference_solution=_clip(str(ref.get("solution") or ""), REFERENCE_CHARS),
            reference_answer=str(ref.get("answer") or ""))
        inner_vs = list(vs)

        def apply(reply: Reply) -> None:
            parsed = _parse_first_error(parse_json_object(reply.text), "first_error_step", upto)
            if not reply.cached and reply.error is None:
                self.client.cache.set_parsed(reply.key, parsed or {"unparseable": True})
            if reply.error is not None or parsed is None:
                for k in range(n):
                    if inner_vs[k] is None or inner_vs[k].label == "unverifiable":
                        vs[k] = self._failure(reply, "math_first_error", inner_vs[k])
                return
            first = parsed["first_error_step"]  # 1-based or None
            llm_ev = self._llm_evidence(reply, "math_first_error", parsed)
            for k in range(n):
                own = inner_vs[k]
                if k >= upto and own is not None:
                    continue  # past the inner judge's first error: decided there
                if own is not None and own.label != "unverifiable":
                    continue
                ev: dict[str, Any] = {"llm": llm_ev}
                if own is not None:
                    ev["inner"] = _inner_dict(own)
                vs[k] = self._position_verdict(k, first, parsed, ev, past_error=k >= upto)

        return [_Ask(i, prompt, apply)]

    # -- code

    def _plan_code(self, i: int, req: JudgeRequest, j: Judgement | None,
                   vs: list[Verdict | None], coverage: Any) -> list[_Ask]:
        n = len(req.fragments)
        if n == 0:
            return []
        ref = req.response.reference
        if j is not None:
            failing = j.solved is False or any(v.label == "incorrect" for v in j.verdicts)
            if j.solved is True or not failing:
                return []  # all tests pass (or nothing to localise): the inner verdicts stand
            first_bad = next((v for v in j.verdicts if v.label == "incorrect"), None)
            report = json.dumps({"summary": dict(j.evidence),
                                 "first_failure": dict(first_bad.evidence) if first_bad else {}},
                                ensure_ascii=False, default=str)
        else:
            tests = ref.get("tests") or ref.get("test") or ref.get("io") or ""
            report = ("The tests were not run. They are:\n"
                      + (tests if isinstance(tests, str) else json.dumps(tests, default=str)))
        prompt = self._prompt(
            "code_first_error", JUDGE_MAX_TOKENS, task=req.response.prompt,
            lines=[f.text for f in req.fragments],
            test_report=_clip(report, TEST_REPORT_CHARS),
            reference_solution=_clip(str(ref.get("solution") or ""), REFERENCE_CHARS))
        inner_vs = list(vs)

        def apply(reply: Reply) -> None:
            parsed = _parse_first_error(parse_json_object(reply.text), "first_error_line", n)
            if not reply.cached and reply.error is None:
                self.client.cache.set_parsed(reply.key, parsed or {"unparseable": True})
            failed = reply.error is not None or parsed is None
            if inner_vs[0] is not None and (failed or parsed["first_error_line"] is None):
                # The tests failed, so an LLM "no error" cannot stand; keep the inner localisation.
                note = (self._failure(reply, "code_first_error", None).evidence["llm"] if failed
                        else self._llm_evidence(reply, "code_first_error", parsed))
                for k in range(n):
                    own = inner_vs[k]
                    vs[k] = replace(own, evidence={**dict(own.evidence), "llm": note})
                return
            if failed:
                for k in range(n):
                    vs[k] = self._failure(reply, "code_first_error", None)
                return
            first = parsed["first_error_line"]
            llm_ev = self._llm_evidence(reply, "code_first_error", parsed)
            for k in range(n):
                ev: dict[str, Any] = {"llm": llm_ev}
                if inner_vs[k] is not None:
                    ev["inner"] = _inner_dict(inner_vs[k])
                vs[k] = self._position_verdict(k, first, parsed, ev)

        return [_Ask(i, prompt, apply)]

    def _position_verdict(self, k: int, first: int | None, parsed: Mapping[str, Any],
                          ev: dict[str, Any], past_error: bool = False) -> Verdict:
        """Fragment ``k``'s verdict from the LLM's 1-based first wrong fragment ``first``."""
        if past_error:
            reason, label = "llm_after_first_error", "unverifiable"
        elif first is None:
            reason, label = "llm_no_error", "correct"
        elif k < first - 1:
            reason, label = "llm_before_first_error", "correct"
        elif k == first - 1:
            reason, label = "llm_first_error", "incorrect"
        else:
            reason, label = "llm_after_first_error", "unverifiable"
        expl = (parsed["explanation"] if reason == "llm_first_error" and parsed["explanation"]
                else REASONS[reason])
        return Verdict(label, self.tag, reason, expl, ev)


def _spec_options(options: LLMOptions) -> dict[str, Any]:
    """The LLM options a spec records: all but the cache path, which never changes a verdict
    (so a resumed run and a fresh one record the same spec)."""
    return {k: v for k, v in options.to_dict().items() if k != "cache_path"}


_LIVE_CLIENTS: weakref.WeakValueDictionary[str, LLMClient] = weakref.WeakValueDictionary()


def _client_for(options: LLMOptions | Mapping[str, Any] | None) -> LLMClient:
    """A client from ``LLMOptions`` or a mapping of them (task metadata, CLI flags).

    A judge and a splitter built from equal options get the same client while either is
    alive and the client is open: one cache file, one vLLM engine.
    """
    opts = options if isinstance(options, LLMOptions) else LLMOptions.from_mapping(options)
    key = json.dumps(opts.to_dict(), sort_keys=True, default=str)
    client = _LIVE_CLIENTS.get(key)
    if client is None or client.closed:
        client = _LIVE_CLIENTS[key] = make_client(opts)
    return client


# ----------------------------------------------------------------------------- the splitter


def _read_demos(path: str | Path | None) -> dict[str, list[str]]:
    """``{sentence: [facts]}`` from ``path``, ``$HALT_FACTSCORE_DEMONS`` or the shipped file."""
    import os

    path = path or os.environ.get(DEMONS_PATH_ENV)
    try:
        if path:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        return json.loads((PROMPTS / DEMOS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{path or DEMOS_FILE}: cannot read the splitter's demos: {e}") from e


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class LLMFactSplitter:
    """Splits answers into atomic facts, one LLM prompt per sentence, few-shot from demons.json.

    Each fact becomes a ``Piece`` whose span is its sentence's span (a fact may reword the
    sentence, so it has no exact span of its own). A sentence whose reply cannot be parsed, or
    whose call fails, becomes one piece: the sentence itself.

    Args:
        options: ``LLMOptions`` (or a mapping); ignored when ``client`` is given.
        client: A ready client (shared with the ``LLMJudge``).
        demons_path: A FActScore-style ``demons.json`` (``{sentence: [facts]}``); default:
            ``$HALT_FACTSCORE_DEMONS``, else FActScore's demos shipped in the package.
        n_fixed_demos: Demos always shown (the first ones of the file).
        n_similar_demos: Demos picked by word overlap with the sentence (as FActScore picks
            by BM25).

    Raises:
        RuntimeError: ``demons.json`` cannot be found or read.
    """

    name = "llm_facts"
    version = "1"

    def __init__(self, *, options: LLMOptions | Mapping[str, Any] | None = None,
                 client: LLMClient | None = None, demons_path: str | Path | None = None,
                 n_fixed_demos: int = 1, n_similar_demos: int = 2) -> None:
        if client is None:
            client = _client_for(options)
        self.client = client
        demons = _read_demos(demons_path)
        self.demos = [{"sentence": s, "answer": json.dumps({"facts": f}, ensure_ascii=False)}
                      for s, f in demons.items()]
        self.n_fixed = n_fixed_demos
        self.n_similar = n_similar_demos
        self.tag = f"{self.name}@{self.version}"

    @property
    def stats(self) -> dict[str, int]:
        return self.client.stats.as_dict()

    def spec(self) -> dict[str, Any]:
        """Name, version, demo counts, template, backend and model (no secret)."""
        return {"name": self.name, "version": self.version,
                "options": {"n_fixed_demos": self.n_fixed, "n_similar_demos": self.n_similar,
                            "n_demos": len(self.demos)},
                "backend": self.client.backend, "model": self.client.options.model,
                "templates": {"split_facts": template_tag("split_facts")},
                "llm": _spec_options(self.client.options)}

    def _demos_for(self, sentence: str) -> list[dict[str, str]]:
        fixed = self.demos[: self.n_fixed]
        words = _words(sentence)
        rest = sorted(self.demos[self.n_fixed:],
                      key=lambda d: (-len(words & _words(d["sentence"])), d["sentence"]))
        return fixed + rest[: self.n_similar]

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]:
        """Atomic facts of each text, all sentences of the batch in one LLM call."""
        from halt_eval.split import sentence_spans

        spans = [sentence_spans(t) for t in texts]
        prompts = [Prompt(render("split_facts", sentence=t[a:b], demos=self._demos_for(t[a:b])),
                          self.tag, template_tag("split_facts"), SPLIT_MAX_TOKENS,
                          SCHEMAS["split_facts"])
                   for t, ss in zip(texts, spans) for a, b in ss]
        replies = iter(self.client.complete(prompts))
        out: list[list[Piece]] = []
        for t, ss in zip(texts, spans):
            pieces: list[Piece] = []
            for a, b in ss:
                reply = next(replies)
                facts = _parse_facts(parse_json_object(reply.text))
                if reply.error is None and not reply.cached:
                    self.client.cache.set_parsed(reply.key, facts if facts is not None
                                                 else {"unparseable": True})
                if not facts:
                    pieces.append(Piece(t[a:b], (a, b)))
                else:
                    pieces += [Piece(f, (a, b)) for f in facts]
            out.append(pieces)
        return out


# ------------------------------------------------------------------------------ CLI flags


#: CLI flag -> LLMOptions field, for ``add_cli_arguments``.
CLI_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--judge-backend": ("backend", {"choices": ["none", "vllm", "openai"],
                                    "help": "LLM judge backend (default: none, the embedded "
                                            "judges only)"}),
    "--judge-model": ("model", {"help": "model path or name (vllm: required; openai: default "
                                        "the server's first model)"}),
    "--judge-base-url": ("base_url", {"help": "OpenAI-compatible server URL up to /v1; the key "
                                              "comes from $HALT_JUDGE_API_KEY or "
                                              "$OPENAI_API_KEY"}),
    "--judge-cache": ("cache_path", {"help": "SQLite cache of LLM replies; a rerun or a resumed "
                                             "run asks only what is not in it"}),
    "--llm-split": ("split", {"action": argparse.BooleanOptionalAction, "default": None,
                              "help": "split bio/med answers into atomic facts with the LLM"}),
    "--judge-concurrency": ("max_concurrency", {"type": int,
                                                "help": "requests in flight (openai; default 16)"}),
    "--judge-timeout": ("timeout_s", {"type": float,
                                      "help": "wall-clock seconds per request attempt, "
                                              "body included (openai; default 60)"}),
    "--judge-batch-size": ("batch_size", {"type": int,
                                          "help": "prompts per engine call (vllm; default 64)"}),
    "--judge-on-error": ("on_error", {"choices": ["fail", "unverifiable"],
                                      "help": "when the judge server cannot be reached: fail "
                                              "the run (default) or score its fragments "
                                              "unverifiable (reason llm_error)"}),
}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--judge-*`` / ``--llm-split`` flags; read them back with ``options_from_args``."""
    group = parser.add_argument_group("LLM judge (docs/llm.md)")
    for flag, (dest, kw) in CLI_FLAGS.items():
        group.add_argument(flag, dest=f"llm_opt_{dest}", **kw)


def options_from_args(args: argparse.Namespace) -> LLMOptions:
    """``LLMOptions`` from flags added by ``add_cli_arguments`` (unset flags keep defaults)."""
    return LLMOptions.from_mapping({dest: getattr(args, f"llm_opt_{dest}", None)
                                    for dest, _ in CLI_FLAGS.values()})
