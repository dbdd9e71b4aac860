"""Split a code answer into its code lines, the fragments of the code domain.

The code is one fenced block or, with no fence, the whole text. A chat answer often holds
several blocks (the solution, an example of its use, a test run); as evalplus's sanitizer does,
the block is chosen by what it defines. Among the Python blocks (```` ```python ````,
```` ```py ```` or an unlabelled fence; every block when none is Python):

1. with an entry point (the task's function: ``entry_point`` or ``fn_name`` of the reference),
   the last block that defines it (``def NAME(``);
2. else the last complete (closed) block that defines a function or class at its top level;
3. else the last complete block; else (only an unclosed fence) the first block.

An unclosed fence runs to the end of the text, as happens when an answer is cut at
"Unsure from Here".
Every physical line is a fragment except blank lines, comment-only lines and the lines of
docstrings (string-expression statements); docstrings are recognised only when the code
parses, so an answer with a syntax error keeps them as lines. Spans index into the given
text and cover the line without its indentation.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
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


def _defines(code: str, name: str | None) -> bool:
    """Whether ``code`` defines function ``name`` (any function or class at the top level when
    ``name`` is ``None``)."""
    if name:
        return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE) is not None
    return re.search(r"^(?:async[ \t]+)?(?:def|class)[ \t]+\w", code, re.MULTILINE) is not None


def code_region(text: str, entry_point: str | None = None) -> tuple[int, int]:
    """Offsets ``[start, end)`` of the code in ``text``: the chosen fenced block (see the module
    docstring; ``entry_point`` names the function the task asks for), or all of it."""
    blocks = []  # (tag, code start, block end, code end, closed)
    for opening in _FENCE.finditer(text):
        if blocks and opening.start() < blocks[-1][2]:
            continue  # a closing fence, not an opening one
        close = _CLOSE.search(text, opening.end())
        end = close.start() if close else len(text)
        blocks.append((opening.group(1).lower(), opening.end(), close.end() if close else len(text),
                       end, close is not None))
    if not blocks:
        return 0, len(text)
    python = [b for b in blocks if b[0] in _PYTHON_TAGS] or blocks
    closed = [b for b in python if b[4]]
    chosen = (
        ([b for b in python if entry_point and _defines(text[b[1]:b[3]], entry_point)] or [None])[-1]
        or ([b for b in closed if _defines(text[b[1]:b[3]], None)] or [None])[-1]
        or (closed or [python[0]])[-1]
    )
    return chosen[1], chosen[3]


def code_lines(text: str, entry_point: str | None = None) -> list[CodeLine]:
    """The code lines of ``text`` (see the module docstring for what counts and which block)."""
    start, end = code_region(text, entry_point)
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


def entry_point_of(reference: object) -> str | None:
    """The function a code reference asks for (``entry_point``, or APPS' ``fn_name``), if any."""
    if not isinstance(reference, Mapping):
        return None
    name = reference.get("entry_point") or reference.get("fn_name")
    return name if isinstance(name, str) and name.isidentifier() else None


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
    #: 2: the fenced block is chosen by what it defines (the entry point), no longer the first.
    version = "2"

    def spec(self) -> dict:
        """Name, version and options (none)."""
        return {"name": self.name, "version": self.version, "options": {}}

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]:
        """One list of pieces per text, each piece one code line with its span in that text;
        the block is chosen with the response's entry point (``entry_point_of`` its reference)."""
        out = []
        for i, t in enumerate(texts):
            entry = entry_point_of(responses[i].reference) if i < len(responses) else None
            out.append([Piece(t[a:b], (a, b)) for a, b in (ln.span for ln in code_lines(t, entry))])
        return out
