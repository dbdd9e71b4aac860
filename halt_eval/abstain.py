"""Natural abstention: a model declining in its own words, beside HALT's marker.

The marker "Unsure from Here" is HALT's: a model trained with HALT writes it where its
knowledge ends, and the scorer cuts the answer there (``ScoredResponse.abstained``). A model
not trained with HALT declines in its own words: "I don't know", "I'm not sure about ...",
"I cannot provide ...". FActScore (``abstain_detection.py``) and VeriScore detect such answers
with a list of phrases; ``detect`` does the same, per sentence, when asked
(``halt-eval score --natural-abstention``, task metadata ``natural_abstention: true``).

What it changes and what it does not:

- The row's response-level evidence gets ``natural_abstention``: the sentences that matched
  (text, span in the scored text, the phrase's name), the offset of the first, and whether
  every sentence of the answer declines (``whole``). Nothing is written when none matched.
- ``abstained`` stays the marker's (or "nothing given"): the two are reported separately so
  that neither hides the other. A row can have both, either or neither.
- Fragments and verdicts do not change: a declining sentence the splitter keeps as a fragment
  is judged like any other (a bio judge usually finds it unverifiable).

The phrases (``PHRASES``) are first-person statements of not knowing or not being able to
answer, matched case-insensitively with straight or curly apostrophes. They are deliberately
narrow: "not sure" inside a quoted claim or "unknown" as a fact ("the cause is unknown") do
not match, since only the speaker declining counts. The list is the documented contract;
extend it with a new name rather than loosening a pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_I = r"\bI(?:\s*'\s*m|\s+am)"  # "I'm", "I am"
_DONT = r"\bI\s+(?:do\s*n\s*'\s*t|do\s+not)"  # "I don't", "I do not"
_CANT = (r"(?:\bI\s+(?:can\s*'\s*t|cannot|can\s+not|could\s*n\s*'\s*t|could\s+not)"
         rf"|{_I}\s+(?:unable|not\s+able)\s+to)")  # "I can't", "I'm unable to", ...

#: Name -> pattern of a first-person abstention, searched in each sentence.
PHRASES: dict[str, str] = {
    "dont_know": rf"{_DONT}\s+know\b",
    "not_sure": rf"{_I}\s+(?:not\s+(?:sure|certain)|unsure|uncertain)\b",
    "cannot_provide": rf"{_CANT}\s+(?:provide|give|answer|verify|confirm|recall|say|determine|help\s+with)\b",
    "no_information": rf"(?:{_DONT}\s+have|\bI\s+have\s+no|\bI\s+lack)\s+(?:any\s+|enough\s+|sufficient\s+|reliable\s+|specific\s+|detailed\s+|much\s+)*(?:information|knowledge|data|details|records?)\b",
    "no_access": rf"{_DONT}\s+have\s+access\s+to\b",
    "not_familiar": rf"{_I}\s+not\s+(?:familiar|aware)\s+(?:with|of)\b",
    "could_not_find": rf"(?:{_CANT}|\bI\s+(?:was\s+unable\s+to|did\s*n\s*'\s*t|did\s+not))\s+find\s+(?:any\s+)?(?:information|records?|details|data)\b",
    "no_information_available": r"\bthere\s+(?:is|was)\s+no\s+(?:reliable\s+|available\s+|public\s+)*information\b",
    "beyond_knowledge": r"\b(?:beyond|outside)\s+(?:the\s+scope\s+of\s+)?my\s+(?:knowledge|training\s+data)\b",
    "sorry_but": r"\bI\s*(?:'\s*m|\s+am)\s+sorry,?\s+but\s+I\b|\bI\s+apologi[sz]e,?\s+but\s+I\b",
}

_COMPILED = {name: re.compile(p, re.IGNORECASE) for name, p in PHRASES.items()}
#: A sentence: up to and including its end mark, or a line without one.
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def sentences(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each non-blank sentence of ``text`` (stripped)."""
    out = []
    for m in _SENTENCE.finditer(text):
        chunk = m.group(0)
        if not chunk.strip():
            continue
        lead = len(chunk) - len(chunk.lstrip())
        out.append((m.start() + lead, m.start() + len(chunk.rstrip())))
    return out


def match(sentence: str) -> str | None:
    """The name of the first phrase a sentence matches, or ``None``."""
    normal = sentence.translate(_APOSTROPHES)
    return next((name for name, rx in _COMPILED.items() if rx.search(normal)), None)


def detect(text: str) -> dict[str, Any] | None:
    """Natural abstention in ``text`` (the scored text: after any reasoning span).

    Returns:
        ``None`` when no sentence matches; else ``{"sentences": [{"text", "span", "phrase"}],
        "first_offset": int, "whole": bool}`` where ``whole`` says every sentence declines
        (the answer gives nothing else).
    """
    spans = sentences(text)
    found = []
    for a, b in spans:
        name = match(text[a:b])
        if name:
            found.append({"text": text[a:b], "span": [a, b], "phrase": name})
    if not found:
        return None
    return {"sentences": found, "first_offset": found[0]["span"][0], "whole": len(found) == len(spans)}


def of_row(evidence: Mapping[str, Any]) -> bool:
    """Whether a row's evidence records natural abstention (``False`` when not detected or
    the option was off)."""
    return isinstance(evidence.get("natural_abstention"), Mapping)
