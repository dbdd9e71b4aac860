"""The scoring rules: the dependent rule, the needed count, and the per-answer formulas.

Every scored row records ``RULES_VERSION``; the gate refuses to pair rows scored under different
versions. Bump it whenever a change here can change a verdict after the judge or a metric value.

Versions:
    1: rows written before the version was recorded (read from rows without ``rules_version``).
    2: the same rules as 1, now recorded in every row.
    3: padding does not pay. A fragment that repeats an earlier one of the same answer (same
       text after case, whitespace, step numbering and end punctuation are ignored; not in
       code, where lines rightly repeat) or carries no content (no letter or digit) does not
       add to ``n_correct`` (``count_correct``); and the
       needed count of an unsolved answer is the reference's (``needed_count``): an unsolved
       answer cannot reach more than ``(n_desired - 1) / n_desired`` completeness however many
       fragments it adds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types import this module; at run time it needs none of theirs
    from halt_eval.types import Verdict

#: Version of the rules below; written into every scored row.
RULES_VERSION = "3"
#: The version a row written without ``rules_version`` was scored under.
UNRECORDED_RULES_VERSION = "1"

#: Needed-count modes: fragments of the reference answer, the share of reference statements
#: covered, a fixed count ``fixed:K``, or what the model is capable of (``capable``: see
#: ``completeness_capable``).
NEEDED_COUNT_MODES: tuple[str, ...] = ("reference", "reference_recall", "fixed:K", "capable")


def parse_needed_mode(mode: str) -> tuple[str, int | None]:
    """``"fixed:5"`` -> ``("fixed", 5)``; ``"reference"`` -> ``("reference", None)``.

    The one parser of the mode: ``ScoreConfig``, ``Scorer`` and ``halt-eval score --n-desired``
    all check a mode here.

    Raises:
        ValueError: Not one of ``NEEDED_COUNT_MODES`` (``K`` must be an integer >= 1).
    """
    if not isinstance(mode, str):
        raise ValueError(f"n_desired must be a string such as 'fixed:5', got {type(mode).__name__}")
    if mode in ("reference", "reference_recall", CAPABLE):
        return mode, None
    if mode.startswith("fixed:"):
        try:
            k = int(mode.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"n_desired {mode!r}: expected fixed:K with an integer K") from None
        if k < 1:
            raise ValueError(f"n_desired {mode!r}: K must be at least 1")
        return "fixed", k
    raise ValueError(f"n_desired must be reference, reference_recall, fixed:K or capable, got {mode!r}")


def apply_dependent_rule(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Every verdict after the first ``incorrect`` one becomes ``incorrect``.

    Only ``incorrect`` starts the rule (an ``unverifiable`` step does not). The replaced verdict
    keeps the judge's own label and reason in its evidence.
    """
    out = list(verdicts)
    first = next((i for i, v in enumerate(out) if v.label == "incorrect"), None)
    if first is None:
        return out
    for i in range(first + 1, len(out)):
        v = out[i]
        out[i] = replace(
            v,
            label="incorrect",
            reason="after_first_error",
            explanation=f"follows the first incorrect fragment (#{first})",
            evidence={"first_error": first, "own_label": v.label, "own_reason": v.reason,
                      **dict(v.evidence)},
        )
    return out


def correctness(n_correct: int, n_given: int) -> float | None:
    """Share of given fragments judged correct; ``None`` when nothing was given."""
    return n_correct / n_given if n_given else None


def needed_count(n_desired: int | None, n_correct: int, solved: bool | None) -> int | None:
    """Fragments a complete answer needs, as completeness counts them: ``n_desired`` (from the
    reference), whatever the answer's own length; ``None`` when unknown.

    ``n_correct`` is not used any more (rules version 3): under version 2 an unsolved answer
    needed ``n_correct + 1``, so padding an unsolved answer with true steps raised its
    completeness towards 1. ``completeness`` caps what an unsolved answer can count instead.
    """
    if not n_desired:
        return None
    return n_desired


_STEP_LABEL = re.compile(r"^\s*(?:(?:step|line)\s*\d+\s*[:.)-]?\s*|\d+[.)]\s+|[-*•]+\s+)", re.IGNORECASE)
_CONTENT = re.compile(r"[^\W_]")


def fragment_key(text: str) -> str | None:
    """What makes two fragments the same: the text without a leading step number or bullet,
    case, whitespace and end punctuation; ``None`` when it carries no content (no letter or digit)."""
    body = _STEP_LABEL.sub("", text, count=1)
    if not _CONTENT.search(body):
        return None
    return re.sub(r"\s+", "", body).rstrip(".;,!").casefold()


@functools.lru_cache(maxsize=64)
def _repeats_count_by_name(name: str) -> bool:
    from halt_eval.domains import get_domain  # the records import this module
    try:
        return get_domain(name).repeats_count
    except ValueError:  # a row of a domain not known here: repeats do not count
        return False


def counted(texts: Sequence[str], domain: Any = "") -> list[bool]:
    """Per fragment, whether it can add to ``n_correct``: not empty of content and not a
    repeat of an earlier fragment of the same answer (repeats count where the domain record's
    ``repeats_count`` says so). ``domain``: a ``Domain`` record or a domain name."""
    seen: set[str] = set()
    out = []
    if isinstance(domain, str):
        repeats_ok = bool(domain) and _repeats_count_by_name(domain)
    else:
        repeats_ok = bool(getattr(domain, "repeats_count", False))
    for text in texts:
        key = fragment_key(text)
        out.append(key is not None and (repeats_ok or key not in seen))
        if key is not None:
            seen.add(key)
    return out


def count_correct(texts: Sequence[str], correct: Sequence[bool], domain: Any = "") -> int:
    """``n_correct``: fragments judged correct, a repeat or a fragment without content not
    counted (padding does not pay; see ``counted``)."""
    return sum(c and k for c, k in zip(correct, counted(texts, domain)))


def completeness(n_correct: int, n_given: int, n_desired: int | None, solved: bool | None,
                 coverage: tuple[int, int] | None = None) -> float | None:
    """Correct fragments against what a complete answer needs, capped at 1.

    Args:
        n_correct: Fragments judged correct.
        n_given: Fragments given.
        n_desired: Fragments a complete answer needs, if known.
        solved: The judge's whole-task decision (dependent domains), if any.
        coverage: ``(covered, total)`` reference statements, with ``reference_recall``.

    Returns:
        1 for an answer that gives something and solves the task; the covered share with
        ``coverage``; else ``n_correct / needed_count`` capped at 1, and for an unsolved answer
        at ``(needed - 1) / needed``; ``None`` when the needed count is unknown.
    """
    if solved and n_given:
        return 1.0
    if coverage is not None:
        covered, total = coverage
        return covered / total if total else 0.0
    needed = needed_count(n_desired, n_correct, solved)
    if needed is None:
        return None
    if solved is False:
        # An unsolved answer lacks at least one needed fragment, however long it is.
        return min(n_correct, needed - 1) / needed
    return min(1.0, n_correct / needed)


def f1(correctness_value: float | None, completeness_value: float | None) -> float | None:
    """Harmonic mean of correctness and completeness (0 when both are 0).

    Undefined (``None``) when completeness is; an answer that gives nothing has undefined
    correctness, taken as 0 here: it contributes nothing of what a complete answer needs.
    """
    if completeness_value is None:
        return None
    corr = correctness_value if correctness_value is not None else 0.0
    total = corr + completeness_value
    return 2 * corr * completeness_value / total if total else 0.0


# --- HALT's ``n_capable`` needed count (needed-count mode ``capable``) ---------------------

#: The needed-count mode whose needed count is what the model is capable of: ``n_capable``.
CAPABLE = "capable"


def n_capable(n_correct_per_sample: Sequence[int]) -> int:
    """HALT's needed count of a prompt: the most correct fragments (``n_correct``, so repeats
    and content-free fragments do not count) any of its sampled answers reaches. With one
    sample per prompt it is that sample's own ``n_correct``."""
    return max(n_correct_per_sample, default=0)


def completeness_capable(n_correct: int, capable: int | None) -> float | None:
    """Correct fragments against what the model is capable of, ``n_correct / n_capable``
    capped at 1; ``None`` when ``n_capable`` is unknown or 0 (no sample of the prompt has a
    correct fragment, so there is nothing the model is capable of to measure against).

    The reference-based rules (a solved answer counts 1, an unsolved one at most
    ``(needed - 1) / needed``, the covered share) do not apply: the needed count is the model's
    own best sample, which reaches 1 whether or not it solved the task."""
    if not capable:
        return None
    return min(1.0, n_correct / capable)
