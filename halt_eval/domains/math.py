"""Math: reasoning steps (dependent), checked by sympy against the reference solution."""

from __future__ import annotations

from typing import Any

from halt_eval.domains.base import ABSTAIN_HINT, Domain, Source


def prompt(problem: str) -> str:
    """The prompt every math task asks."""
    return ("Solve the following problem step by step. Put the final answer in \\boxed{}. "
            f"{ABSTAIN_HINT}\n\nProblem: {problem}")


def load_math500(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    return [domain.doc(task, "math500", r.get("unique_id", i), prompt(r["problem"]),
                       {"answer": r["answer"], "solution": r["solution"]})
            for i, r in enumerate(rows)]


def load_gsm8k(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    docs = []
    for i, r in enumerate(rows):
        final = r["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
        docs.append(domain.doc(task, "gsm8k", i, prompt(r["question"]),
                               {"answer": final, "solution": r["answer"]}))
    return docs


_HUB = "https://huggingface.co/datasets"
#: Dataset revisions on the Hub the online copies are pinned to, and the files read there.
_MATH500 = "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
_GSM8K = "cc7b047b6e5bb11b4f1af84efc572db110a51b3c"


DOMAIN = Domain(
    name="math",
    description="reasoning steps, each claim and the final answer checked by sympy against the reference",
    kind="dependent",
    fragment="reasoning step",
    splitter="math_steps",
    judge="sympy",
    n_desired="reference",
    reference_text=("solution",),
    reference_help='{"answer": str, "solution": str}  (either may be missing)',
    sources={
        "math500": Source("math500", "halt_eval.domains.math:load_math500",
                          local="math/math-500/test.jsonl",
                          hub=("HuggingFaceH4/MATH-500", None, "test"), revision=_MATH500,
                          url=f"{_HUB}/HuggingFaceH4/MATH-500/resolve/{_MATH500}/test.jsonl",
                          license="MIT"),
        "gsm8k": Source("gsm8k", "halt_eval.domains.math:load_gsm8k",
                        local="math/gsm8k/test.jsonl",
                        hub=("openai/gsm8k", "main", "test"), revision=_GSM8K,
                        url=f"{_HUB}/openai/gsm8k/resolve/{_GSM8K}/main/test-00000-of-00001.parquet",
                        license="MIT"),
    },
    llm_policy="math_first_error",
)
