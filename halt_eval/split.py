"""Abstention markers and the generic splitting helpers every domain splitter builds on.

The marker ("Unsure from Here" by default) ends an answer: it is not a fragment and nothing
after it is scored. Matching ignores case, punctuation and whitespace between the words, so
"unsure, from  here" and "**Unsure from here.**" match too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from halt_eval.types import Piece

DEFAULT_MARKERS: tuple[str, ...] = ("Unsure from Here",)


@lru_cache(maxsize=32)
def _marker_regex(markers: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = []
    for marker in markers:
        words = re.findall(r"\w+", marker)
        if not words:
            raise ValueError(f"abstention marker {marker!r} has no words")
        alternatives.append(r"\b" + r"[\W_]*".join(map(re.escape, words)) + r"\b")
    return re.compile("|".join(alternatives), re.IGNORECASE)


def check_markers(markers: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first marker phrase without a word (``'!!!'``)."""
    _marker_regex(tuple(markers))


@dataclass(frozen=True, slots=True)
class Cut:
    """An answer cut at its abstention marker.

    Attributes:
        text: What comes before the marker (the whole answer when there is none).
        marker_offset: Offset of the marker in the answer, or ``None``.
    """

    text: str
    marker_offset: int | None


def cut_at_marker(answer: str, markers: Iterable[str] = DEFAULT_MARKERS) -> Cut:
    """Cut ``answer`` at the first abstention marker.

    Args:
        answer: The model's answer.
        markers: Marker phrases; each matches case-insensitively with any punctuation or
            whitespace between its words.

    Returns:
        The text before the marker (trailing markup such as ``**`` or ``(`` dropped) and
        the marker's offset.
    """
    match = _marker_regex(tuple(markers)).search(answer)
    if match is None:
        return Cut(answer, None)
    head = answer[: match.start()]
    head = re.sub(r"[\s*_(\[`>#-]+$", "", head)
    return Cut(head, match.start())


def strip_markers(answer: str, markers: Iterable[str] = DEFAULT_MARKERS) -> str:
    """``answer`` with every abstention marker phrase removed (the text after it kept)."""
    return _marker_regex(tuple(markers)).sub(" ", answer)


# group 1: the end mark with any closing quotes or brackets, which stay with the sentence
_SENTENCE_END = re.compile(r"[.!?]([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9$\\])")
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|etc|e\.g|i\.e|U\.S|No|Fig|Eq|approx|Inc|Ltd|Co)"
    r"|\b[A-Z])\.$"
)
# The longest abbreviation above with its full stop ("approx.") fits in this many characters;
# the abbreviation test looks back no further, so splitting stays linear in the text's length
# (searching from the sentence start made "A. " * 33,000 take over a minute).
_ABBREVIATION_WINDOW = 8


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text[start:end]``, stripped of surrounding whitespace.

    A full stop after a common abbreviation or a single capital (an initial) does not end a
    sentence; a newline always does.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line_start, line_end in line_spans(text, start, end):
        cursor = line_start
        for match in _SENTENCE_END.finditer(text, line_start, line_end):
            stop = match.start() + 1
            if _ABBREVIATIONS.search(text, max(cursor, stop - _ABBREVIATION_WINDOW), stop):
                continue
            spans.append((cursor, match.end(1)))
            cursor = match.end()
        spans.append((cursor, line_end))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[1] > s[0]]


def line_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the non-blank lines of ``text[start:end]``, stripped of surrounding whitespace."""
    end = len(text) if end is None else end
    spans = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl == -1 else nl
        a, b = _strip(text, pos, stop)
        if b > a:
            spans.append((a, b))
        pos = stop + 1
    return spans


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def pieces_from_spans(text: str, spans: Sequence[tuple[int, int]]) -> list[Piece]:
    """Pieces whose text is exactly the spanned text."""
    return [Piece(text[a:b], (a, b)) for a, b in spans]


def locate(answer: str, texts: Sequence[str]) -> list[Piece]:
    """Pieces for pre-split fragment texts, located in order in ``answer``.

    A fragment that does not occur verbatim (after the previous one) gets an empty span at
    the current position, so spans stay ordered and inside the answer.
    """
    pieces = []
    cursor = 0
    for fragment in texts:
        needle = fragment.strip()
        found = answer.find(needle, cursor) if needle else -1
        if found == -1:
            pieces.append(Piece(fragment, (cursor, cursor)))
        else:
            cursor = found + len(needle)
            pieces.append(Piece(fragment, (found, cursor)))
    return pieces


class SentenceSplitter:
    """Splits an answer into sentences. Generic fallback for prose."""

    name = "sentences"
    version = "1"

    def split(self, texts, responses) -> list[list[Piece]]:
        return [pieces_from_spans(t, sentence_spans(t)) for t in texts]
