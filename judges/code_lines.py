"""Split a code answer into its code lines, the fragments of the code domain.

The code is the first fenced block (```` ```python ````, ```` ```py ```` or an unlabelled
fence are preferred over other languages) or, with no fence, the whole text. An unclosed
fence runs to the end of the text, as happens when an answer is cut at "Unsure from Here".
Every physical line is a fragment except blank lines, comment-only lines and the lines of
docstrings (string-expression statements); docstrings are recognised only when the code
parses, so an answer with a syntax error keeps them as lines. Spans index into the given
text and cover the line without its indentation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from halt_eval.types import Piece, Response

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n", re.MULTILINE)
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
_PYTHON_TAGS = ("", "python", "py", "python3", "py3")


@dataclass(frozen=True, slots=True)
class CodeLine:
    """One code line of an answer.

    Attributes:
        number: 1-based line number within the code region (as the interpreter counts).
        span: ``[start, end)`` of the stripped line in the answer text.
    """

    number: int
    span: tuple[int, int]


def code_region(text: str) -> tuple[int, int]:
    """Offsets ``[start, end)`` of the code in ``text``: the chosen fenced block, or all of it."""
    blocks = []
    for opening in _FENCE.finditer(text):
        if blocks and opening.start() < blocks[-1][2]:
            continue  # a closing fence, not an opening one
        close = _CLOSE.search(text, opening.end())
        end = close.start() if close else len(text)
        blocks.append((opening.group(1).lower(), opening.end(), close.end() if close else len(text), end))
    if not blocks:
        return 0, len(text)
    chosen = next((b for b in blocks if b[0] in _PYTHON_TAGS), blocks[0])
    return chosen[1], chosen[3]


def code_lines(text: str) -> list[CodeLine]:
    """The code lines of ``text`` (see the module docstring for what counts)."""
    start, end = code_region(text)
    code = text[start:end]
    skip = _docstring_lines(code)
    out = []
    offset = start
    for number, line in enumerate(code.split("\n"), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and number not in skip:
            lead = len(line) - len(line.lstrip())
            out.append(CodeLine(number, (offset + lead, offset + lead + len(stripped))))
        offset += len(line) + 1
    return out


def _docstring_lines(code: str) -> set[int]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


class CodeLineSplitter:
    """Splits answers (and reference solutions) into code lines. Batch first."""

    name = "code_lines"
    version = "1"

    def spec(self) -> dict:
        """Name, version and options (none)."""
        return {"name": self.name, "version": self.version, "options": {}}

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]:
        """One list of pieces per text, each piece one code line with its span in that text."""
        return [[Piece(t[a:b], (a, b)) for a, b in (ln.span for ln in code_lines(t))] for t in texts]
