"""Named judges, splitters and per-domain defaults.

Entries are import strings resolved on first use, so ``import halt_eval`` loads no sympy,
torch or vllm. ``get_judge`` and ``get_splitter`` build an instance from keyword arguments;
the arguments are recorded (``JudgeSpec``) in run headers and key the verdict cache.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from halt_eval.types import Domain, FragmentKind, Judge, Splitter

NDesiredMode = Literal["reference", "reference_recall"] | str  # or "fixed:K"

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


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """How a domain is scored by default.

    Attributes:
        domain: The domain name.
        kind: Fragment structure: ``dependent`` (wrong after the first error) or ``independent``.
        splitter: Registry name of the default splitter.
        judge: Registry name of the default judge.
        n_desired: ``reference`` (fragments of the reference answer, cut the same way),
            ``fixed:K``, or ``reference_recall`` (share of reference statements covered).
        reference_text: Reference fields holding the reference answer that ``reference``
            mode splits, tried in order.
    """

    domain: Domain
    kind: FragmentKind
    splitter: str
    judge: str
    n_desired: NDesiredMode
    reference_text: tuple[str, ...] = field(default_factory=tuple)


# Biographies have no reference answer to count against. HALT's Wikipedia answers held about
# 9.6 fragments on average, so a complete biography is taken to need 10 facts.
BIO_FIXED_K = 10

DOMAINS: dict[str, DomainSpec] = {
    "math": DomainSpec("math", "dependent", "math_steps", "sympy", "reference", ("solution",)),
    "code": DomainSpec("code", "dependent", "code_lines", "sandbox", "reference", ("solution",)),
    "bio": DomainSpec("bio", "independent", "atomic_facts", "retrieval", f"fixed:{BIO_FIXED_K}"),
    "med": DomainSpec("med", "independent", "atomic_facts", "retrieval", "reference_recall"),
}


def _load(table: dict[str, str], kind: str, name: str) -> Any:
    try:
        target = table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_judge(name: str, **kwargs: Any) -> Judge:
    """Build the judge registered as ``name``.

    Raises:
        ValueError: ``name`` is not registered.
        RuntimeError: A package or sandbox the judge needs is missing (the message names the fix).
    """
    return _load(JUDGES, "judge", name)(**kwargs)


def get_splitter(name: str, **kwargs: Any) -> Splitter:
    """Build the splitter registered as ``name`` (see ``get_judge``)."""
    return _load(SPLITTERS, "splitter", name)(**kwargs)


def domain_spec(domain: str) -> DomainSpec:
    """The default scoring setup of ``domain``."""
    try:
        return DOMAINS[domain]
    except KeyError:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}") from None
