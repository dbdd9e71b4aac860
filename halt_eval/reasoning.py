"""Reasoning spans: what a reasoning model thinks before it answers.

Most current checkpoints emit ``<think> ... </think>`` (or another span) before the answer.
Scored as the answer, every thought would be split and judged. ``split_reasoning`` separates
the span from the answer; the scorer then judges the part the ``reasoning`` option names:

- ``answer`` (default): only what follows the span. An opened span that never closes (the
  generation ran out inside it) leaves no answer, so the row abstains rather than judging
  half-finished thoughts.
- ``reasoning``: only the span's inside (to study the thoughts themselves).
- ``keep``: the whole text, span included (the behaviour before this option).

The opening delimiter may be missing: chat templates of several models put ``<think>`` into
the prompt, so the generation starts inside the span and only the closing delimiter shows.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The delimiters most reasoning checkpoints use (DeepSeek-R1, Qwen3, SmolLM3, ...).
DEFAULT_DELIMITERS: tuple[str, str] = ("<think>", "</think>")
#: What the scorer judges: the answer after the span, the span's inside, or everything.
MODES = ("answer", "reasoning", "keep")


@dataclass(frozen=True, slots=True)
class ReasoningSplit:
    """An answer text taken apart at its reasoning span.

    Attributes:
        answer: The text after the span (the whole text when there is no span).
        reasoning: The span's inside, without delimiters; ``None`` when there is no span.
        span: ``(start, end)`` of the span in the original text, delimiters included.
        closed: Whether the span was closed (``False``: the text ended inside it).
    """

    answer: str
    reasoning: str | None
    span: tuple[int, int] | None
    closed: bool = True

    @property
    def chars(self) -> int:
        """Length of the span in characters, delimiters included (0 without a span)."""
        return 0 if self.span is None else self.span[1] - self.span[0]

    def evidence(self, mode: str) -> dict[str, object]:
        """What a scored row records about the span."""
        return {"mode": mode, "chars": self.chars, "closed": self.closed,
                "span": list(self.span) if self.span else None}


def split_reasoning(text: str, delimiters: tuple[str, str] = DEFAULT_DELIMITERS) -> ReasoningSplit:
    """Separate the reasoning span from the answer.

    The span runs from the first opening delimiter (or the start of the text, when only a
    closing one appears) to the last closing delimiter, so thoughts that quote a delimiter stay
    inside it.
    """
    open_, close = delimiters
    if not open_ or not close:
        raise ValueError(f"reasoning delimiters must be two non-empty strings, got {delimiters!r}")
    start = text.find(open_)
    end = text.rfind(close)
    if end != -1 and (start == -1 or start > end):
        start = -1  # the generation began inside the span (the template opened it)
    if end == -1:
        if start == -1:
            return ReasoningSplit(text, None, None)
        return ReasoningSplit("", text[start + len(open_):], (start, len(text)), closed=False)
    inner_from = 0 if start == -1 else start + len(open_)
    return ReasoningSplit(text[end + len(close):], text[inner_from:end],
                          (max(start, 0), end + len(close)))


def parse_delimiters(value: str | tuple[str, str] | list[str] | None) -> tuple[str, str]:
    """Delimiters from an option: a pair, or ``"OPEN,CLOSE"`` / ``"OPEN CLOSE"`` text."""
    if value in (None, ""):
        return DEFAULT_DELIMITERS
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
    else:
        parts = list(value)
    if len(parts) != 2 or not all(isinstance(p, str) and p.strip() for p in parts):
        raise ValueError(f"reasoning delimiters: expected OPEN,CLOSE (e.g. '<think>,</think>'), got {value!r}")
    return (parts[0].strip(), parts[1].strip())


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"reasoning must be one of {', '.join(MODES)}, got {mode!r}")
    return mode
