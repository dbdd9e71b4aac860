"""The LLM judge's cost before spending: ``halt-eval score --judge-dry-run``.

A dry run scores the answers exactly as a real run would, except that every prompt meant for
the LLM is recorded instead of sent (``DryRunClient``). So:

- **The embedded judge still runs** (sympy, the code sandbox, retrieval): the LLM is asked
  only about what it leaves undecided, and counting those needs its verdicts. The count of
  LLM judge calls is therefore exact for the given answers, options and prompt templates.
- Identical prompts are counted once, as the client sends them once.
- The reply cache (``--judge-cache``) is consulted when a model name is given
  (``--judge-model``; the cache key holds it): prompts it already answers are counted as
  cache hits, not calls. Without a model name the ``openai`` backend would ask the server
  for its first model, which a dry run does not do, so nothing counts as cached.
- With ``--llm-split`` the splitter's calls are exact (one per sentence), but the facts
  those calls would return are unknown, so the judge's calls are counted per sentence (each
  sentence as one fact): an estimate, usually below the real count.
- Tokens are estimated, not tokenized: prompt tokens as characters / 4 (the usual rule of
  thumb for English text with GPT-style tokenizers), summed over every message of every
  counted prompt; completion tokens as an upper bound, the sum of each prompt's
  ``max_tokens`` cap.

Nothing is written: no scored rows, no cache entries, no server contact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from halt_eval.judges.llm_client import LLMClient, Prompt, Reply
from halt_eval.types import Response

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
_NOT_SENT = "judge dry run: not sent"


class DryRunClient(LLMClient):
    """Records the prompts a client would send; answers each with an error reply."""

    def __init__(self, real: LLMClient) -> None:
        super().__init__(real.options, real.cache)
        self.backend = real.backend
        self.sent: list[Prompt] = []

    @property
    def model_id(self) -> str:
        return str(self.options.model) if self.options.model else "(the server's default model)"

    def _send(self, items):
        self.sent += [p for p, _ in items]
        return [Reply(None, k, _NOT_SENT, "bad_reply") for _, k in items]

    def close(self) -> None:
        self.closed = True  # the cache belongs to the real client


def _llm_parts(scorer: Any) -> list[Any]:
    """The scorer's parts that talk to an LLM (a ``client`` attribute): the LLM judge (alone
    or as the fallback of a composed judge) and the LLM fact splitter."""
    parts = [scorer.judge, getattr(scorer.judge, "fallback", None), scorer.splitter]
    return [p for p in parts if p is not None and isinstance(getattr(p, "client", None), LLMClient)]


def dry_run(scorer: Any, responses: Sequence[Response], *, batch_size: int = 32) -> dict[str, Any]:
    """What scoring ``responses`` with ``scorer`` would ask the LLM, without asking it.

    Returns:
        ``{"llm_calls", "prompt_chars", "prompt_tokens_estimate", "max_completion_tokens",
        "cache_hits", "by_template": {template: calls}, "answers", "backend", "model",
        "cache_consulted", "method"}``; see the module docstring for what is exact.

    Raises:
        ValueError: The scorer has no LLM judge or splitter (``--judge-backend none``).
    """
    parts = _llm_parts(scorer)
    if not parts:
        raise ValueError("--judge-dry-run counts LLM calls, and this run has no LLM judge: "
                         "add --judge-backend openai or vllm (with its model or URL)")
    dry: dict[int, DryRunClient] = {}
    originals = [(p, p.client) for p in parts]
    try:
        for p, client in originals:
            p.client = dry.setdefault(id(client), DryRunClient(client))
        for start in range(0, len(responses), batch_size):
            scorer.score(list(responses[start:start + batch_size]))
    finally:
        for p, client in originals:
            p.client = client
    sent = [p for c in dry.values() for p in c.sent]
    chars = sum(len(str(m.get("content", ""))) for p in sent for m in p.messages)
    options = originals[0][1].options
    return {
        "answers": len(responses),
        "backend": originals[0][1].backend,
        "model": options.model,
        "llm_calls": len(sent),
        "by_template": dict(sorted(Counter(p.template for p in sent).items())),
        "prompt_chars": chars,
        "prompt_tokens_estimate": math.ceil(chars / CHARS_PER_TOKEN),
        "max_completion_tokens": sum(min(p.max_tokens or options.max_tokens, options.max_tokens)
                                     for p in sent),
        "cache_hits": sum(c.stats.cache_hits for c in dry.values()),
        "cache_consulted": bool(options.model),
        "method": "embedded judge run, LLM prompts built and counted but not sent; "
                  f"tokens estimated as characters / {CHARS_PER_TOKEN}",
    }


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as a few lines for the terminal."""
    lines = [f"judge dry run: {plan['answers']} answers, backend {plan['backend']}, "
             f"model {plan['model'] or '(server default)'}",
             f"  LLM calls          {plan['llm_calls']:,}"
             + (f"  ({', '.join(f'{n:,} {t}' for t, n in plan['by_template'].items())})"
                if plan["by_template"] else ""),
             f"  prompt tokens      ~{plan['prompt_tokens_estimate']:,} (estimate: "
             f"{plan['prompt_chars']:,} characters / {CHARS_PER_TOKEN})",
             f"  completion tokens  at most {plan['max_completion_tokens']:,} (each call's max_tokens)",
             f"  cache hits         {plan['cache_hits']:,}"
             + ("" if plan["cache_consulted"] else " (cache not consulted: no --judge-model)"),
             "  the embedded judge ran to find what it leaves undecided; nothing was sent or written"]
    return "\n".join(lines)
