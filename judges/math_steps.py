"""Cut math answers and reference solutions into reasoning steps, and find their claims.

Splitting rules (``MathStepSplitter``), applied in order:

1. ``[asy]...[/asy]`` figures are dropped: they draw, they claim nothing.
2. Math (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\begin{align*}...``) and GSM8K
   calculator annotations (``<<48/2=24>>``) are never cut inside, and a display block joins the
   sentence around it, so "Therefore,\\n\\[x = 2\\]" is one step (a blank line still ends it).
3. The rest is cut into lines, and lines into sentences (``halt_eval.split.sentence_spans``).
4. A sentence holding a relation chain inside math (``$a = b = c$``, align rows ``&= ...``) with two
   or more relations is cut into its links: each link is one claim. The first link keeps the prose
   before the chain, the last one the prose after it; a link's text repeats the operand it shares
   with the previous link, so every piece reads as a whole claim and spans still tile the sentence.
5. The GSM8K final line ``#### 72`` is kept as a step of its own: it states the final answer, in
   reference solutions and in model answers alike, so ``n_desired = reference`` counts it.

Chains written in plain text ("5 * 5 = 25 classes = ...") are not cut: without math delimiters
the end of a link is a guess. The judge still checks each of their links.

The claim finders (``find_claims``) feed the sympy judge (``sympy_math``, ``math_claims``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from halt_eval.split import line_spans, sentence_spans
from halt_eval.types import Piece, Response

ClaimSource = Literal["latex", "text", "annotation"]

# Math delimiters, longest first so "$$" wins over "$".
_MATH = re.compile(
    r"\$\$(?P<dd>.+?)\$\$"
    r"|\\\[(?P<br>.+?)\\\]"
    r"|\\\((?P<pa>.+?)\\\)"
    r"|\\begin\{(?P<env>align|aligned|equation|eqnarray|gather|multline)\*?\}(?P<ev>.+?)"
    r"\\end\{(?P=env)\*?\}"
    r"|(?<![\\$])\$(?P<d>[^$]+?)(?<!\\)\$",
    re.DOTALL,
)
_DISPLAY_GROUPS = ("dd", "br", "ev")
_ANNOTATION = re.compile(r"<<(?P<lhs>[^<>=]*)=(?P<rhs>[^<>]*)>>")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
# A "$...$" whose content starts with a number and holds plain words is two dollar amounts
# ("$15 per student ... $7455"), not math.
_TEXT_GROUP = re.compile(r"\\(?:text|mbox|mathrm|textbf)\s*\{[^{}]*\}")
_PLAIN_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")

# Relations that make a link of a chain; longest spellings first.
_LATEX_RELATIONS = (
    r"\approx", r"\leq", r"\geq", r"\neq", r"\le", r"\ge", r"\ne", r"\lt", r"\gt", "=", "<", ">",
)
# Tokens that end a chain: a new claim starts after them.
_LATEX_BREAKS = (
    r"\Rightarrow", r"\Longrightarrow", r"\implies", r"\iff", r"\Leftrightarrow", r"\therefore",
    r"\qquad", r"\quad", r"\text", r"\mbox", r"\textbf", r"\mathrm", r"\pmod", r"\mod", r"\equiv",
    r"\to", r"\rightarrow", r"\in", r"\subset", r"\cup", r"\cap", ";", r"\;",
)
_OPEN = "{(["
_CLOSE = "})]"


@dataclass(frozen=True, slots=True)
class MathSegment:
    """A stretch of math in a text.

    Attributes:
        span: Offsets of the whole segment, delimiters included.
        inner: Offsets of the math between the delimiters.
        display: Whether it is a display block (``\\[``, ``$$``, an environment).
    """

    span: tuple[int, int]
    inner: tuple[int, int]
    display: bool


@dataclass(frozen=True, slots=True)
class Chain:
    """Operands joined by relations, as written: ``a = b < c``.

    Attributes:
        operands: Offsets of each operand in the text (stripped).
        relations: The relation between operand ``i`` and ``i + 1``.
    """

    operands: tuple[tuple[int, int], ...]
    relations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable link: ``lhs rel rhs``.

    Attributes:
        lhs: Left operand, as written (LaTeX for ``latex``, plain arithmetic otherwise).
        rel: The relation: ``=``, ``<``, ``>``, ``<=``, ``>=``, ``!=`` or ``~`` (approximately).
        rhs: Right operand.
        source: ``latex`` (inside math), ``text`` (plain prose) or ``annotation`` (``<<a=b>>``).
        link: 0 for the first link of its chain, 1 for the next, and so on. A symbolic first
            link is usually a definition or an equation to solve, not an identity.
    """

    lhs: str
    rel: str
    rhs: str
    source: ClaimSource
    link: int

    def as_text(self) -> str:
        """The claim as one line, for evidence."""
        return f"{self.lhs} {self.rel} {self.rhs}"


_REL_NAMES = {
    "=": "=", "<": "<", ">": ">", r"\lt": "<", r"\gt": ">", r"\le": "<=", r"\leq": "<=",
    r"\ge": ">=", r"\geq": ">=", r"\ne": "!=", r"\neq": "!=", r"\approx": "~",
    "≈": "~", "≠": "!=", "≤": "<=", "≥": ">=",
}


def math_segments(text: str) -> list[MathSegment]:
    """The math segments of ``text`` in order; dollar amounts are not math."""
    out = []
    for m in _MATH.finditer(text):
        group = next(g for g in ("dd", "br", "pa", "ev", "d") if m.group(g) is not None)
        inner = m.span(group)
        if group == "d":
            content = m.group("d")
            words = _PLAIN_WORD.findall(_TEXT_GROUP.sub(" ", content))
            if (words and content.lstrip()[:1].isdigit()) or len(words) >= 2:
                continue
        out.append(MathSegment(m.span(), inner, group in _DISPLAY_GROUPS))
    return out


def latex_chains(text: str, start: int, end: int) -> list[Chain]:
    """Relation chains in the LaTeX ``text[start:end]``, at brace and bracket depth 0.

    Align markers (``&``) are ignored; a row break (``\\\\``) continues the chain only when
    the next row starts with a relation (``&= ...``).
    """
    chains: list[Chain] = []
    operands: list[tuple[int, int]] = []
    relations: list[str] = []
    depth = 0
    piece_start = start
    i = start

    def close_operand(stop: int) -> None:
        a, b = _strip(text, piece_start, stop)
        operands.append((a, b))

    def flush() -> None:
        if relations and len(operands) == len(relations) + 1:
            chains.append(Chain(tuple(operands), tuple(relations)))
        operands.clear()
        relations.clear()

    while i < end:
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        if depth == 0 and ch == "\\" and text.startswith("\\\\", i):
            close_operand(i)
            i += 2
            while i < end and (text[i].isspace() or text[i] == "&"):
                i += 1
            rel = _match_any(text, i, _LATEX_RELATIONS)
            if rel:
                relations.append(_REL_NAMES[rel])
                i += len(rel)
            else:
                operands.pop()
                flush()
            piece_start = i
            continue
        if depth == 0:
            brk = _match_any(text, i, _LATEX_BREAKS)
            if brk.startswith("\\") and _letter_at(text, i + len(brk)):
                brk = ""
            if brk in _TEXT_COMMANDS and not _is_connective(text, i + len(brk), end):
                i = _skip_group(text, i + len(brk), end) if _next_is_brace(text, i + len(brk), end) else i + len(brk)
                continue
            if brk or (ch == "," and not _in_number(text, i)):
                close_operand(i)
                flush()
                i += len(brk) if brk else 1
                if brk in _TEXT_COMMANDS and _next_is_brace(text, i, end):
                    i = _skip_group(text, i, end)
                piece_start = i
                continue
            rel = _match_any(text, i, _LATEX_RELATIONS)
            if rel and not (rel.startswith("\\") and _letter_at(text, i + len(rel))):
                close_operand(i)
                relations.append(_REL_NAMES[rel])
                i += len(rel)
                piece_start = i
                continue
        i += 1
    close_operand(end)
    flush()
    return [c for c in chains if all(b > a for a, b in c.operands)]


_TEXT_COMMANDS = (r"\text", r"\mbox", r"\textbf", r"\mathrm")
# Words in \text{} that join two claims ("x = 1 \text{ and } y = 2"); other text is a named
# quantity or a unit and stays part of its operand.
_CONNECTIVES = frozenset("and or so then thus hence since because where when if for as but i.e. e.g. "
                         "which gives giving yields implies therefore".split())


def _next_is_brace(text: str, i: int, end: int) -> bool:
    while i < end and text[i] == " ":
        i += 1
    return i < end and text[i] == "{"


def _is_connective(text: str, i: int, end: int) -> bool:
    """Whether the ``\\text{...}`` group at ``i`` holds only a connective word (or nothing)."""
    m = re.compile(r"\s*\{([^{}]*)\}").match(text, i, end)
    if m is None:
        return True
    words = m.group(1).strip(" ,.;:").lower().split()
    return not words or all(w.strip(",.") in _CONNECTIVES for w in words)


def _match_any(text: str, i: int, options: Sequence[str]) -> str:
    for opt in options:
        if text.startswith(opt, i):
            return opt
    return ""


def _letter_at(text: str, i: int) -> bool:
    return i < len(text) and text[i].isalpha()


def _in_number(text: str, i: int) -> bool:
    """Whether the comma at ``i`` is a thousands separator (``1,000`` or ``1{,}000``)."""
    return (i > 0 and text[i - 1] in "{0123456789" and re.match(r",\}?\d{3}(?!\d)", text[i:]) is not None)


def _skip_group(text: str, i: int, end: int) -> int:
    depth = 0
    while i < end:
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return end


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and (text[a].isspace() or text[a] == "&"):
        a += 1
    while b > a and (text[b - 1].isspace() or text[b - 1] in "&.,"):
        b -= 1
    return a, b


# ---------------------------------------------------------------- plain-text arithmetic

_TEXT_TOKEN = re.compile(
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![A-Za-z_\d]))"
    r"|(?P<op>[+\-*/×÷^·−–]|\bx\b|\bX\b|\btimes\b|\bplus\b|\bminus\b|\bdivided by\b|\bmultiplied by\b)"
    r"|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<rel>≈|≠|≤|≥|=|<|>)"
    r"|(?P<cur>[$€£])|(?P<pct>%)"
    r"|(?P<word>[A-Za-z\d]*[A-Za-z][A-Za-z\d]*(?:'s)?)"
    r"|(?P<other>\S)"
)
_OP_NAMES = {"×": "*", "x": "*", "X": "*", "times": "*", "multiplied by": "*", "·": "*", "÷": "/",
             "divided by": "/", "plus": "+", "minus": "-", "−": "-", "–": "-", "^": "^"}
# Words that end an arithmetic expression instead of being read as its unit.
_STOP_WORDS = frozenset(
    "of and or is are was were be so then which that the a an to for in on with by from it we "
    "he she they this there each if when but than total remaining left".split()
)
_MAX_UNIT_WORDS = 3


def text_chains(text: str) -> list[list[tuple[str, str]]]:
    """Plain-text arithmetic chains: each a list of ``(expression, relation-to-next)``.

    An expression is numbers joined by operators and parentheses; up to three unit words
    may follow a number ("15 students/class"). Currency signs are dropped; ``%`` is kept for
    the checker to read both ways. The last item's relation is ``""``.
    """
    found = list(_TEXT_TOKEN.finditer(text))
    tokens = [(m.lastgroup, m.group()) for m in found]
    chains: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        expr, j = _read_expression(tokens, i) if _may_start(found, i) or current else (None, i)
        if expr is None:
            if len(current) > 1:
                chains.append(current)
            current = []
            i += 1
            continue
        if j < len(tokens) and tokens[j][0] == "rel" and _read_expression(tokens, j + 1)[0] is not None:
            current.append((expr, _REL_NAMES.get(tokens[j][1], tokens[j][1])))
            i = j + 1
            continue
        if current:
            current.append((expr, ""))
            chains.append(current)
        current = []
        i = max(j, i + 1)
    return [c for c in chains if len(c) > 1]


def _may_start(found: list[re.Match], i: int) -> bool:
    """Whether an expression may start at token ``i``: not right after an operator, a number, a
    parenthesis, a one-letter unknown or "mod" ("x + 5 - 5 = 27 - 5" is not "5 - 5 = 27 - 5"),
    and a leading minus must touch its number ("- 4" after a dash is prose)."""
    if i > 0:
        prev = found[i - 1]
        word = prev.group().lower()
        if prev.lastgroup in ("op", "num", "rp") or (prev.lastgroup == "word" and (len(word) == 1 or word in ("mod", "modulo"))):
            return False
    m = found[i]
    if m.lastgroup == "op" and i + 1 < len(found) and found[i + 1].start() != m.end():
        return False
    return True


def _read_expression(tokens: list[tuple[str, str]], i: int) -> tuple[str | None, int]:
    """Read one arithmetic expression from ``tokens[i:]``; return it and the next index."""
    out: list[str] = []
    depth = 0
    expect_operand = True
    while i < len(tokens):
        kind, tok = tokens[i]
        if expect_operand:
            if kind == "cur":
                i += 1
                continue
            if kind == "op" and _OP_NAMES.get(tok, tok) == "-":
                out.append("-")
                i += 1
                continue
            if kind == "lp":
                out.append("(")
                depth += 1
                i += 1
                continue
            if kind != "num":
                break
            out.append(tok.replace(",", ""))
            i += 1
            if i < len(tokens) and tokens[i][0] == "pct":
                out.append("%")
                i += 1
            i = _skip_units(tokens, i)
            expect_operand = False
            continue
        if kind == "lp":  # "10(4)" is a product
            out.append("*")
            expect_operand = True
            continue
        if kind == "op":
            name = _OP_NAMES.get(tok, tok)
            if i + 1 < len(tokens) and tokens[i + 1][0] in ("num", "lp", "cur"):
                out.append(name)
                expect_operand = True
                i += 1
                continue
            break
        if kind == "rp" and depth > 0:
            out.append(")")
            depth -= 1
            i += 1
            i = _skip_units(tokens, i)
            continue
        break
    while out and out[-1] in "+-*/^(":
        out.pop()
        i -= 1
    if not out or depth != 0 or out[-1] == "(":
        return None, i
    return " ".join(out), i


def _skip_units(tokens: list[tuple[str, str]], i: int) -> int:
    words = 0
    while i < len(tokens) and words < _MAX_UNIT_WORDS:
        kind, tok = tokens[i]
        if kind == "word" and tok.lower() not in _STOP_WORDS and tok not in _OP_NAMES:
            words += 1
            i += 1
        elif (kind == "op" and tok == "/" and i + 1 < len(tokens) and tokens[i + 1][0] == "word"
              and tokens[i + 1][1].lower() not in _STOP_WORDS):
            words += 1
            i += 2
        else:
            break
    return i


def find_claims(text: str) -> list[Claim]:
    """Every checkable link a step states, in order of appearance.

    GSM8K annotations give ``annotation`` claims and are then blanked; math segments give
    ``latex`` claims from their chains; the remaining prose gives ``text`` claims.
    """
    claims: list[Claim] = []
    blank = list(text)
    for m in _ANNOTATION.finditer(text):
        claims.append(Claim(m.group("lhs").strip(), "=", m.group("rhs").strip(), "annotation", 0))
        blank[m.start():m.end()] = " " * (m.end() - m.start())
    text = "".join(blank)
    for seg in math_segments(text):
        if _MODULAR.search(text, *seg.inner):
            blank[seg.span[0]:seg.span[1]] = " " * (seg.span[1] - seg.span[0])
            continue
        for chain in latex_chains(text, *seg.inner):
            for k, rel in enumerate(chain.relations):
                lhs, rhs = chain.operands[k], chain.operands[k + 1]
                claims.append(Claim(text[slice(*lhs)], rel, text[slice(*rhs)], "latex", k))
        blank[seg.span[0]:seg.span[1]] = " " * (seg.span[1] - seg.span[0])
    prose = "".join(blank)
    # A calculator annotation repeats the computation written beside it: keep one copy.
    seen = {_squeezed(c.as_text()) for c in claims if c.source == "annotation"}
    for chain in (c for line in prose.split("\n") for c in text_chains(line)):
        for k in range(len(chain) - 1):
            claim = Claim(chain[k][0], chain[k][1], chain[k + 1][0], "text", k)
            if _squeezed(claim.as_text()) not in seen:
                claims.append(claim)
    return claims


# Congruences and remainders are not equalities of numbers: "21 \mod 19 = 2" is skipped whole.
_MODULAR = re.compile(r"\\(?:p|b)?mod\b|\\equiv|\bmod\b|\\pmod")


def _squeezed(s: str) -> str:
    return re.sub(r"\s+", "", s)


# ---------------------------------------------------------------- the splitter

def _protected(text: str) -> list[tuple[int, int, bool]]:
    """Regions never cut inside: math segments and annotations, with a display flag."""
    regions = [(s.span[0], s.span[1], s.display) for s in math_segments(text)]
    regions += [(m.start(), m.end(), False) for m in _ANNOTATION.finditer(text)]
    return sorted(regions)


def _masked(text: str) -> str:
    """``text`` with the same length, where nothing inside math can end a line or sentence.

    Newlines next to a display block are masked too, so the block joins its sentence.
    """
    chars = list(text)
    for a, b, display in _protected(text):
        for k in range(a, b):
            if chars[k] in "\n.!?":
                chars[k] = " "
        if display:
            k = a
            while k > 0 and text[k - 1].isspace():
                k -= 1
            _join(chars, text, k, a)
            k = b
            while k < len(text) and text[k].isspace():
                k += 1
            _join(chars, text, b, k)
    return "".join(chars)


def _join(chars: list[str], text: str, a: int, b: int) -> None:
    """Blank out the whitespace ``text[a:b]`` unless it holds a blank line (a paragraph break)."""
    if text.count("\n", a, b) <= 1:
        chars[a:b] = " " * (b - a)


class MathStepSplitter:
    """Cuts math answers and reference solutions into steps (see the module docstring).

    Batch first, stateless and deterministic: the same text always gives the same pieces.
    """

    name = "math_steps"
    version = "1"

    def spec(self) -> dict:
        """Name, version and options (none)."""
        return {"name": self.name, "version": self.version, "options": {}}

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]:
        """Cut each text into steps.

        Args:
            texts: Answer texts (already cut at the abstention marker) or reference solutions.
            responses: The responses they belong to (unused: the rules depend on text alone).

        Returns:
            One list of pieces per text; spans are ordered, disjoint and inside the text.
        """
        return [split_steps(t) for t in texts]


def split_steps(text: str) -> list[Piece]:
    """The steps of one text, with chain links cut (see the module docstring)."""
    masked = _ASY.sub(lambda m: " " * len(m.group()), _masked(text))
    segments = math_segments(text)
    pieces: list[Piece] = []
    for line_a, line_b in line_spans(masked):
        for a, b in sentence_spans(masked, line_a, line_b):
            pieces.extend(_links(text, a, b, segments))
    return pieces


def _links(text: str, a: int, b: int, segments: list[MathSegment]) -> list[Piece]:
    """Cut the sentence ``text[a:b]`` after each inner operand of its math chains."""
    cuts: list[tuple[int, MathSegment, tuple[int, int], str]] = []
    for seg in segments:
        if seg.span[0] < a or seg.span[1] > b:
            continue
        for chain in latex_chains(text, *seg.inner):
            if len(chain.relations) < 2:
                continue
            for k in range(1, len(chain.relations)):
                cuts.append((chain.operands[k][1], seg, chain.operands[k], chain.relations[k]))
    if not cuts:
        return [Piece(text[a:b], (a, b))]
    pieces = []
    start, prefix = a, ""
    for cut, seg, operand, _rel in sorted(cuts, key=lambda c: c[0]):
        close = text[seg.inner[1]:seg.span[1]]
        pieces.append(Piece(prefix + text[start:cut] + close, (start, cut)))
        opening = text[seg.span[0]:seg.inner[0]]
        prefix = opening + text[operand[0]:operand[1]] + " "
        start = cut
    pieces.append(Piece(prefix + text[start:b].lstrip(), (start, b)))
    return pieces


# ---------------------------------------------------------------- quantities (reference support)

_QUANTITY = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}"
                       r"|(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\d)")
_SLASH_FRACTION = re.compile(r"(?<![\w./])(\d+)\s*/\s*(\d+)(?![\d.])")
#: Integers up to this are too common ("divide by 2", "step 3") to tell paths apart.
SMALL_QUANTITY = 10


def quantities(text: str) -> set[Fraction]:
    """The numbers ``text`` writes, as exact absolute values: integers, decimals, thousands
    separators, ``\\frac{a}{b}`` and ``a/b`` with integer parts (a/b also gives a and b)."""
    out: set[Fraction] = set()
    for m in _QUANTITY.finditer(text):
        if m.group(1) is not None:
            if int(m.group(2)):
                out.add(abs(Fraction(int(m.group(1)), int(m.group(2)))))
        else:
            out.add(Fraction(m.group(3).replace(",", "")))
    for m in _SLASH_FRACTION.finditer(text):  # "3/4" is also the number 3/4
        if int(m.group(2)):
            out.add(Fraction(int(m.group(1)), int(m.group(2))))
    return out


def with_percent_forms(values: set[Fraction]) -> set[Fraction]:
    """``values`` and each one divided by 100 (20% written as 0.20)."""
    return values | {v / 100 for v in values}


def telling(values: set[Fraction]) -> set[Fraction]:
    """The quantities that can tell two solution paths apart: not small integers."""
    return {v for v in values if v.denominator != 1 or v > SMALL_QUANTITY}
