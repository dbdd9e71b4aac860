"""Named judges and splitters (what each domain uses is in its record, ``halt_eval.domains``).

Entries are import strings resolved on first use, so ``import halt_eval`` loads no sympy,
torch or vllm. ``get_judge`` and ``get_splitter`` build an instance from keyword arguments;
the arguments are recorded (``JudgeSpec``) in run headers and key the verdict cache.
"""

from __future__ import annotations

import importlib
from typing import Any

from halt_eval.types import Judge, Splitter

JUDGES: dict[str, str] = {
    "sympy": "halt_eval.judges.sympy_math:SympyJudge",
    "sandbox": "halt_eval.judges.sandbox_code:SandboxJudge",
    "retrieval": "halt_eval.judges.retrieval_claims:RetrievalJudge",
    "llm": "halt_eval.judges.llm:LLMJudge",
}

SPLITTERS: dict[str, str] = {
    "sentences": "halt_eval.split:SentenceSplitter",
    "math_steps": "halt_eval.judges.math_steps:MathStepSplitter",
    "code_lines": "halt_eval.judges.code_lines:CodeLineSplitter",
    "atomic_facts": "halt_eval.judges.atomic_facts:AtomicFactSplitter",
    "llm_facts": "halt_eval.judges.llm:LLMFactSplitter",
}


def _load(table: dict[str, str], kind: str, name: str) -> Any:
    """A registered name, or ``module:ATTRIBUTE`` for a judge or splitter outside the registry."""
    target = table.get(name) or (name if ":" in name else None)
    if target is None:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))} "
                         f"(or module:ATTRIBUTE)")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def judge_class(name: str) -> Any:
    """The class (or factory) registered as judge ``name``, not built: its ``version`` without
    loading models or starting pools."""
    return _load(JUDGES, "judge", name)


def splitter_class(name: str) -> Any:
    """The class (or factory) registered as splitter ``name`` (see ``judge_class``)."""
    return _load(SPLITTERS, "splitter", name)


def get_judge(name: str, **kwargs: Any) -> Judge:
    """Build the judge registered as ``name``.

    Raises:
        ValueError: ``name`` is not registered.
        RuntimeError: A package or sandbox the judge needs is missing (the message names the fix).
    """
    return judge_class(name)(**kwargs)


def get_splitter(name: str, **kwargs: Any) -> Splitter:
    """Build the splitter registered as ``name`` (see ``get_judge``)."""
    return splitter_class(name)(**kwargs)


def spec_of(component: Any) -> dict[str, Any]:
    """What a judge or splitter records about itself: its ``spec()`` when it has one, else
    ``{"name", "version"}``."""
    spec = getattr(component, "spec", None)
    if callable(spec):
        return dict(spec())
    if isinstance(spec, dict):
        return dict(spec)
    return {"name": getattr(component, "name", type(component).__name__),
            "version": str(getattr(component, "version", "?"))}
