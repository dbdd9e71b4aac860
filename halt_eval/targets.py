"""HALT finetuning targets from scored samples (``halt-eval targets``).

For each prompt ``(task, id)`` with N scored samples, the samples are sorted by mean fragment
correctness and the one at position ⌈αN⌉ becomes the target after trimming:

- **Order.** Ascending by ``n_correct / n_given``; an answer with no fragments counts as
  correctness 0. Ties keep sample-index order (the sort is stable on ``(correctness, sample)``,
  a row without a sample index being sample 0). Position ⌈αN⌉ is 1-based, clamped to
  ``[1, N]``; lower α picks a less correct sample, so more is trimmed.
- **Independent fragments** (bio, med): correct fragments are kept, incorrect and unverifiable
  ones dropped, in their original order. Text is stitched per source sentence (the sentence of
  the answer that holds the fragment's span start): a sentence whose fragments are all correct
  is kept verbatim; a sentence with some correct fragments is replaced by those fragments' own
  texts (each an atomic claim, ended with a full stop if it has no end mark); a sentence with
  none is dropped. Kept pieces are joined by a newline when the original had a line break
  between them, else by a space. None correct: the target is ``Unsure from Here``.
- **Dependent fragments** (math, code): the answer up to the end of the last fragment before
  the first ``incorrect`` one (``unverifiable`` steps before it are kept, as the dependent rule
  only starts at ``incorrect``), then ``Unsure from Here`` on its own line (a space when the cut
  falls mid-line). If the cut falls inside a code fence the fence is closed first and the
  marker follows it as plain text, never as a comment inside the code. An answer without an
  incorrect fragment is kept whole; the first fragment incorrect gives ``Unsure from Here``.
- **Already abstained.** Only what precedes the marker was scored, so only that is used. A
  dependent answer without an incorrect fragment before the marker keeps that text and ends with
  the marker in its canonical spelling; an independent target never holds the marker unless
  it is the whole target (no correct fragment), as in the paper.
- **No fragments** (an empty answer, or a marker at the start): the target is the marker.
- **Add-On variant** (``variant="addon"``): the HALT target, then the marker, then what was
  trimmed: the rest of the answer from the first incorrect fragment on (dependent; a fence is
  reopened with its opening line if the cut closed it) or the dropped fragments' texts in order
  (independent). Everything after the marker is what the model is unsure of; the scorer does
  not score it. An answer with nothing trimmed is the same in both variants.

``n_capable`` is HALT's completeness variant: the most correct fragments any of the prompt's
samples reaches, taken as the needed count; each target reports ``n_correct / n_capable``
(capped at 1) beside its reference-based completeness, by the same rule as the metric
contract's needed-count mode ``capable`` (``rules.completeness_capable``, ``halt_eval.capable``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from halt_eval import rules
from halt_eval.split import sentence_spans
from halt_eval.types import LABELS, ScoredResponse

MARKER = "Unsure from Here"
#: Version of the target rules in this module; written into every provenance.
TARGETS_VERSION = "1"
Variant = Literal["halt", "addon"]
VARIANTS: tuple[str, ...] = ("halt", "addon")

_FENCE_LINE = re.compile(r"^[ \t]*```[^\n]*$", re.MULTILINE)
_MARKUP_BEFORE_MARKER = re.compile(r"[\s*_(\[`>#-]+$")  # as halt_eval.split.cut_at_marker
_END_MARK = re.compile(r"[.!?][\"')\]]*$")


class TargetError(ValueError):
    """Rows that cannot give a target; the message names the task and id."""


@dataclass(frozen=True, slots=True)
class Target:
    """One finetuning target.

    Attributes:
        task: The task of the prompt.
        id: The document id.
        alpha: The threshold that chose the sample.
        prompt: The prompt text.
        text: The target answer.
        chosen: The chosen sample's row.
        position: Its 1-based position in the ascending order.
        order: The sample indices in ascending order.
        n_capable: The most correct fragments of any sample of the prompt.
        kept: Fragments the target keeps before the marker.
        variant: ``halt`` or ``addon``.
    """

    task: str
    id: str
    alpha: float
    prompt: str
    text: str
    chosen: ScoredResponse
    position: int
    order: tuple[int, ...]
    n_capable: int
    kept: int
    variant: str

    def to_row(self, run: str = "") -> dict[str, Any]:
        """The chat finetuning row: ``messages`` and ``provenance``."""
        c = self.chosen
        counts = {label: sum(v.label == label for v in c.verdicts) for label in LABELS}
        completeness_capable = rules.completeness_capable(c.n_correct, self.n_capable)
        provenance: dict[str, Any] = {
            "task": self.task,
            "id": self.id,
            "sample": c.sample or 0,
            "alpha": self.alpha,
            "n_samples": len(self.order),
            "position": self.position,
            "order": list(self.order),
            "variant": self.variant,
            "verdict_counts": counts,
            "n_given": c.n_given,
            "n_kept": self.kept,
            "correctness": c.correctness,
            "completeness": c.completeness,
            "n_capable": self.n_capable,
            "completeness_capable": completeness_capable,
            "rules_version": c.rules_version,
            "targets_version": TARGETS_VERSION,
            "judge_spec": dict(c.judge_spec),
        }
        if run:
            provenance["run"] = run
        return {"messages": [{"role": "user", "content": self.prompt},
                             {"role": "assistant", "content": self.text}],
                "provenance": provenance}


def position(alpha: float, n: int) -> int:
    """1-based position ⌈αN⌉, clamped to ``[1, N]``."""
    if n < 1:
        raise ValueError("no samples")
    # round first: 0.28 * 25 is 7.000000000000001 in floating point, and must give 7, not 8
    return min(n, max(1, math.ceil(round(alpha * n, 9))))


def _sort_key(row: ScoredResponse) -> tuple[float, int]:
    return (row.correctness or 0.0, row.sample or 0)


def choose(samples: Sequence[ScoredResponse], alpha: float) -> tuple[ScoredResponse, int, list[ScoredResponse]]:
    """The sample at ⌈αN⌉ in ascending correctness order, its position and the order."""
    order = sorted(samples, key=_sort_key)
    pos = position(alpha, len(order))
    return order[pos - 1], pos, order


def _kind(row: ScoredResponse) -> str:
    if row.fragments:
        return row.fragments[0].kind
    try:
        from halt_eval.domains import get_domain
        return get_domain(row.response.domain).kind
    except (ValueError, KeyError):  # an unknown domain: no fragments, so the target is the marker
        return "independent"


def _given(row: ScoredResponse) -> str:
    """The answer as scored: cut at the marker when it holds one, with the markup before the
    marker (``# ``, ``**``, a bracket) dropped as the scorer drops it."""
    t = row.response.text
    return t if row.marker_offset is None else _MARKUP_BEFORE_MARKER.sub("", t[: row.marker_offset])


def trim(row: ScoredResponse, variant: Variant = "halt") -> tuple[str, int]:
    """The target text of one scored answer and how many fragments it keeps before the marker.

    See the module docstring for the rules.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if not row.fragments:
        return MARKER, 0
    if _kind(row) == "dependent":
        return _trim_dependent(row, variant)
    return _trim_independent(row, variant)


def _trim_dependent(row: ScoredResponse, variant: Variant) -> tuple[str, int]:
    text = _given(row)
    first = next((i for i, v in enumerate(row.verdicts) if v.label == "incorrect"), None)
    if first is None:
        if row.marker_offset is None:
            return row.response.text, len(row.fragments)
        return _close_and_mark(text.rstrip(), "\n"), len(row.fragments)
    start = row.fragments[first].span[0]
    if first == 0:
        head, sep = "", "\n"
    else:
        cut = row.fragments[first - 1].span[1]
        head = text[:cut].rstrip()
        sep = "\n" if "\n" in text[cut:start] else " "
    target = _close_and_mark(head, sep)
    if variant == "addon":
        if sep == "\n":  # the first error starts a line: keep its indentation
            start = _line_start(text, start)
        opener = _open_fence(text[:start])
        rest = text[start:].rstrip()
        target += "\n" + (f"{opener}\n{rest}" if opener is not None else rest)
    return target, first


def _close_and_mark(head: str, sep: str) -> str:
    """``head``, a fence left open in it closed, then the marker (the marker alone for none)."""
    if not head:
        return MARKER
    if _open_fence(head) is not None:
        head, sep = head + "\n```", "\n"
    return f"{head}{sep}{MARKER}"


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _open_fence(text: str) -> str | None:
    """The opening line of a code fence left open at the end of ``text``, if any."""
    fences = _FENCE_LINE.findall(text)
    return fences[-1].strip() if len(fences) % 2 == 1 else None


def _trim_independent(row: ScoredResponse, variant: Variant) -> tuple[str, int]:
    text = _given(row)
    sentences = sentence_spans(text)
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(row.fragments):
        where = next((k for k, (a, b) in enumerate(sentences) if a <= f.span[0] < b), None)
        groups.setdefault(-1 - i if where is None else where, []).append(i)
    pieces: list[tuple[str, int, int]] = []  # text, start and end of its source in the answer
    dropped: list[str] = []
    for where, members in sorted(groups.items(), key=lambda kv: row.fragments[kv[1][0]].span[0]):
        good = [i for i in members if row.verdicts[i].label == "correct"]
        dropped.extend(_claim(row.fragments[i].text) for i in members if i not in good)
        if not good:
            continue
        if where >= 0:
            a, b = sentences[where]
        else:  # a span outside every sentence: the fragment stands alone
            a, b = row.fragments[members[0]].span
        if where >= 0 and len(good) == len(members):
            pieces.append((text[a:b], a, b))
        else:
            pieces.append((" ".join(_claim(row.fragments[i].text) for i in good), a, b))
    kept = sum(row.verdicts[i].label == "correct" for i in range(len(row.fragments)))
    out = ""
    prev_end = None
    for piece, a, b in pieces:
        if prev_end is not None:
            out += "\n" if "\n" in text[prev_end:a] else " "
        out += piece
        prev_end = b
    target = out or MARKER
    if variant == "addon" and dropped:
        target = (f"{out}\n{MARKER}" if out else MARKER) + "\n" + " ".join(dropped)
    return target, kept


def _claim(fragment_text: str) -> str:
    t = fragment_text.strip()
    return t if not t or _END_MARK.search(t) else t + "."


def group_samples(rows: Iterable[ScoredResponse]) -> dict[tuple[str, str], list[ScoredResponse]]:
    """Rows by ``(task, id)``, in first-seen order."""
    out: dict[tuple[str, str], list[ScoredResponse]] = {}
    for r in rows:
        out.setdefault((r.response.task, r.response.id), []).append(r)
    return out


def build_targets(rows: Iterable[ScoredResponse], alphas: Sequence[float],
                  variant: Variant = "halt") -> list[Target]:
    """Targets for every prompt and α, α by α, prompts in first-seen order.

    Raises:
        TargetError: An α outside ``(0, 1]``, or a prompt without prompt text.
    """
    for a in alphas:
        if not 0 < a <= 1:
            raise TargetError(f"alpha must be in (0, 1], got {a}")
    groups = group_samples(rows)
    out: list[Target] = []
    for alpha in alphas:
        for (task, doc_id), samples in groups.items():
            chosen, pos, order = choose(samples, alpha)
            prompt = chosen.response.prompt
            if not prompt:
                raise TargetError(f"task {task!r} id {doc_id!r}: the rows hold no prompt text")
            text, kept = trim(chosen, variant)
            out.append(Target(task, doc_id, alpha, prompt, text, chosen, pos,
                              tuple(r.sample or 0 for r in order),
                              rules.n_capable([r.n_correct for r in samples]), kept, variant))
    return out
