"""Final answers: finding the one an answer states, and grading it against the reference.

``locate_final_answer`` takes the last ``\\boxed{}``, else the last ``#### N`` line, else the
last "the answer is ...", else reads the last step with a number or math (``EXTRACTIONS``);
``compare_answers`` decides equality through Math-Verify's parser and sympy (numbers exactly,
decimals to the digits shown, fractions, radicals, intervals, sets, tuples, matrices,
relations, simple expressions). Comparisons run inside the sympy judge's workers (no time
limit here); extraction is regular expressions only and runs where the checks are planned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from halt_eval.judges.math_latex import LATEX_SPACING

#: Significant digits used for numeric comparison of exact values.
EVAL_DIGITS = 50
#: A number with a base subscript ("52_8", "(21)_{5}", "{10}_3"); only the same text is the
#: same number. Only digits (or hex digits with at least one digit) before the underscore and
#: a number after it: ``\operatorname{proj}_{\mathbf{w}}`` or ``a_1`` are not bases.
BASE_NOTATION = re.compile(
    r"(?:(?<![A-Za-z0-9\\])[0-9A-Fa-f]*\d[0-9A-Fa-f]*|\{[0-9A-Fa-f]*\d[0-9A-Fa-f]*\}|\([0-9A-Fa-f]*\d[0-9A-Fa-f]*\))"
    r"\s*_\s*(?:\{\s*)?\d")

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
#: GSM8K's "#### 42" (not a Markdown heading: "#### Step 1: ...", "#### 3. Compute").
_HASHES = re.compile(r"^\s*####\s*(?P<a>(?!\d+[.:)]\s)[-$\\\d.(][^\n]*?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|^[\s*#]*answer)\s*(?:is|:)\s*:?\s*\**\s*"
    r"(?P<a>\$[^$]+\$|\\\(.+?\\\)|[^\n]+?)\s*\**\s*(?:\.\s|\.?\s*$|\n)",
    re.IGNORECASE | re.MULTILINE,
)

#: How a final answer is found, in the order tried (``FinalAnswer.extraction``). The first
#: three are stated as the answer, anywhere in the response (the last one wins); the others
#: are read from the last fragment that has one, when no fragment states its answer:
#: ``whole`` (the whole fragment is one short expression: "-5", "x \leq 5", "1000,99"), else the
#: rightmost of ``last_latex`` (a ``$...$``, ``\(...\)``, ``\[...\]`` or ``$$...$$``; the last
#: value of a chain "76 \times 30 = 2280"), ``final_equation`` ("so x = 3"), ``last_tuple``
#: ("(3, 2)") and ``last_number`` ("a total of 2,280 reports", "27%"), where math with a value
#: or a bold number beats a later bare number of its sentence (``unanchored_final_answer``).
EXTRACTIONS = ("boxed", "hash", "answer_is", "whole", "last_latex", "final_equation", "last_tuple",
               "last_number")


class FinalAnswer(NamedTuple):
    """The final answer of a response: the fragment stating it, its text, how it was found."""

    index: int
    text: str
    extraction: str


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in ``text`` (see ``EXTRACTIONS``); ``None`` if there is none."""
    found = locate_final_answer([text])
    return found.text if found else None


def locate_final_answer(fragments: Sequence[str], unanchored: bool = True) -> FinalAnswer | None:
    """The final answer of a response split into ``fragments``: the last box in any fragment,
    else the last ``####`` line, else the last "the answer is ...", else (nothing stated as the
    answer, and ``unanchored``) the unanchored reading of the last fragment that has one;
    ``None`` if none has. An answer cut at an abstention marker is read with
    ``unanchored=False``: the steps before "Unsure from Here" end on no final answer."""
    found = [(got[0], -i, i, got[1]) for i, text in enumerate(fragments) for got in [ranked_final_answer(text)] if got]
    if found:
        rank, _, index, answer = min(found)
        return FinalAnswer(index, answer, EXTRACTIONS[rank])
    for i in range(len(fragments) - 1, -1, -1) if unanchored else ():
        got = unanchored_final_answer(fragments[i])
        if got:
            return FinalAnswer(i, got[1], got[0])
    return None


def ranked_final_answer(text: str) -> tuple[int, str] | None:
    """``(rank, answer)`` of an answer stated as such: rank 0 for a box, 1 for ``####``, 2 for
    "the answer is"."""
    boxes = list(_BOXED.finditer(text))
    if boxes:
        start = boxes[-1].end()
        depth = 1
        for k in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                return (0, text[start:k].strip()) if text[start:k].strip() else None
        return (0, text[start:].strip()) if text[start:].strip() else None
    hashes = list(_HASHES.finditer(text))
    if hashes:
        return 1, hashes[-1].group("a")
    said = list(_ANSWER_IS.finditer(text))
    if said:
        answer = said[-1].group("a").strip()
        # "Final Answer: The final answer is $x$." says it twice; take the inner one.
        inner = _ANSWER_IS.search(answer + "\n")
        while inner is not None and inner.group("a").strip() != answer:
            answer = inner.group("a").strip()
            inner = _ANSWER_IS.search(answer + "\n")
        math = _LATEX_ENV.match(answer)
        if math:  # "$15$ minutes", "\(x = 2 + 3 = 5\)": the math, the value it ends on
            answer = _last_value(next(g for g in math.groups() if g is not None).strip().rstrip(".,;").strip())
        return (2, answer) if answer else None
    return None


# ---------------------------------------------------------------- unanchored extraction

_LATEX_ENV = re.compile(
    r"(?<!\\)\$\$(?P<d>.+?)(?<!\\)\$\$|(?<!\\)\\\[(?P<b>.+?)\\\]|(?<!\\)\\\((?P<p>.+?)\\\)"
    r"|(?<![\\\d$])\$(?P<i>(?:\\\$|[^$\n])+?)(?<!\\)\$",
    re.DOTALL,
)
_NUM = r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_NUMBER = re.compile(rf"(?<![\w.,^_\\/])(?P<n>{_NUM})(?:\s*(?P<pct>\\?%|percent\b))?(?!\d)")
#: A tuple in prose: "(3, 2)", "(4,\pi)", "(\frac{1}{2}, -1)" (numbers and LaTeX, no words).
_ENTRY = r"(?:[-+\d.^/{}]|\\[A-Za-z]+)+"
_TUPLE = re.compile(rf"(?<![\w^_\\])\(\s*{_ENTRY}(?:\s*,\s*{_ENTRY})+\s*\)")
#: "x = 3", "f(x) = -1.5", "x_1 = 2" in prose: a short name, "=", a number ending the clause.
_EQUATION = re.compile(rf"(?<![\w\\])(?P<eq>[A-Za-z](?:_\{{?\w+\}}?)?(?:\([A-Za-z]\))?\s*=\s*{_NUM})(?![\d.,]\d)")
#: One letter, maybe with a subscript or prime: the name of an unknown.
_NAME = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?'*")
#: Words in math: a run of three letters that is not a LaTeX command nor inside ``\text{}``.
_WORDS = re.compile(r"(?<![\\A-Za-z])(?:[A-Za-z]{3,}|(?i:so|is|it|we|be|as|at|by|if|of|to|an|no|or|on)(?![A-Za-z]))")
_COMMANDS = re.compile(r"\\(?:text|mathrm|mbox|textbf|operatorname|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
#: Links of a chain: "=", "\approx", "\equiv" (not "\leq", "<=", "!=").
_CHAIN = re.compile(r"(?<![<>!\\])=|\\(?:approx|equiv)(?![A-Za-z])")
#: A modulus closing a congruence ("\equiv 3 \pmod{7}"): the residue is the value.
_MODULUS = re.compile(r"\s*\\(?:pmod|bmod|mod)\s*\{?\s*\w+\s*\}?\s*$")
#: A left side whose value the right side gives, besides one with no unknowns: a series
#: ("\frac{1}{2} + \dots", "\sum_{k=1}^{n} k").
_SERIES = re.compile(r"\\(?:[lc]?dots|sum|prod|int|lim)(?![A-Za-z])")
#: The longest fragment read as one whole expression.
_WHOLE_MAX = 80


def unanchored_final_answer(text: str) -> tuple[str, str] | None:
    """``(extraction, answer)`` read from a fragment that does not state its answer as such
    (no box, ``####`` or "the answer is"); ``None`` if it has no number nor math."""
    whole = text.strip().rstrip(".").strip()
    bare = whole.strip("$").strip()
    bare = re.sub(r"^\\[(\[](.*)\\[)\]]$", r"\1", bare, flags=re.DOTALL).strip()
    if (bare and len(bare) <= _WHOLE_MAX and "\n" not in bare and re.search(r"\d|\\|[A-Za-z]", bare)
            and not _WORDS.search(_COMMANDS.sub(" ", bare)) and _balanced(bare) and not _names_only(bare)):
        return "whole", _last_value(bare)
    # (end, -start, marked, extraction, answer); marked: math with a value, or a bold number
    candidates: list[tuple[int, int, bool, str, str]] = []
    spans, symbolic = [], []
    for m in _LATEX_ENV.finditer(text):
        content = next(g for g in m.groups() if g is not None).strip().rstrip(".,;").strip()
        if not content or _WORDS.search(_COMMANDS.sub(" ", content)):
            continue  # "$5 and $" is two prices, not math
        spans.append(m.span())
        value = _last_value(content)
        if _names_only(value):
            continue  # "for \(n\)", "\(a = b = c = d\)", "\(c = d\)" name unknowns; they do not answer
        if _has_value(value):
            candidates.append((m.end(), -m.start(), True, "last_latex", value))
        elif _stated(content):
            symbolic.append((m.end(), -m.start(), False, "last_latex", value))
        # else a chain of expressions with unknowns is a derivation, not an answer
    outside = lambda m: not any(a <= m.start() < b for a, b in spans)  # noqa: E731
    for m in _EQUATION.finditer(text):
        if outside(m):
            candidates.append((m.end(), -m.start(), False, "final_equation", m.group("eq")))
    for m in _TUPLE.finditer(text):
        if outside(m):
            candidates.append((m.end(), -m.start(), False, "last_tuple", m.group()))
    for m in _NUMBER.finditer(text):
        if outside(m):
            bold = text[max(0, m.start() - 2):m.start()] == "**"
            candidates.append((m.end(), -m.start(), bold, "last_number",
                               m.group("n") + ("\\%" if m.group("pct") else "")))
    candidates = candidates or symbolic  # "x^2 + 4x + 4" answers only where nothing has a value
    if not candidates:
        return None
    # The rightmost; but in its sentence, the rightmost math with a value or bold number wins
    # over a bare number ("\(7.50\) dollars for 4 friends" is 7.50); of two ending together
    # ("x = 3" and "3"), the one starting first.
    last = max(candidates)
    sentence = _sentence_start(text, -last[1])
    marked = [c for c in candidates if c[2] and -c[1] >= sentence]
    _, _, _, how, answer = max(marked) if marked else last
    return how, answer


#: Where a sentence begins: after ". ", "! ", "? " or a line break.
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def _sentence_start(text: str, position: int) -> int:
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, position)]
    return starts[-1] if starts else 0


def _has_value(latex: str) -> bool:
    """Math that gives a value: no unknowns ("300", "\\frac{8\\pi}{5}", "\\text{Evelyn}"), or a
    name with one ("x = 1", "(r, \\theta) = (4, \\pi)"); "x^2 + 4x + 4" has none."""
    if _no_unknowns(latex):
        return True
    parts = _top_level_split(latex)
    return len(parts) == 2 and _no_unknowns(parts[1])


#: A name a symbolic answer may be given to: "y", "f(x)", "a_n".
_LABEL_TEXT = re.compile(r"\s*[A-Za-z](?:_\{?\w+\}?)?(?:\([A-Za-z, ]*\))?\s*")


def _stated(latex: str) -> bool:
    """A symbolic expression stated alone or named ("x^2 + 1", "f(x) = x^2 + 1"), not a
    derivation ("y = (x+1)^2 = x^2 + 2x + 1", "(x+1)^2 = x^2 + 2x + 1")."""
    parts = _top_level_split(latex)
    return len(parts) == 1 or (len(parts) == 2 and bool(_LABEL_TEXT.fullmatch(parts[0])))


def _names_only(latex: str) -> bool:
    """Unknowns alone, or equal to each other: "n", "a = b = c = d"."""
    return all(_NAME.fullmatch(part.strip()) for part in _top_level_split(_last_value(latex)))


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _last_value(latex: str) -> str:
    """The value a chain ends on: "x = 2 + 3 = 5" gives "5", "76 \\times 30 = 2280" gives
    "2280"; "x = 3" and "y = 2x + 1" are kept whole (a labelled value, an equation)."""
    parts = _top_level_split(latex)
    if len(parts) >= 2 and re.search(r"\\equiv(?![A-Za-z])", latex):
        return _MODULUS.sub("", parts[-1]).strip()
    if len(parts) >= 3 or (len(parts) == 2 and (_no_unknowns(parts[0]) or _SERIES.search(parts[0]))):
        return parts[-1].strip()
    return latex


def _no_unknowns(latex: str) -> bool:
    """No letter outside LaTeX commands: "76 \\times 30", "\\binom{11}{4}", "\\frac{28}{4}"."""
    return bool(latex.strip()) and not re.search(r"[A-Za-z]", _COMMANDS.sub(" ", latex))


#: Values joined, not chained: "x = 1 \text{ or } x = 2", "x = 1 \quad y = 2".
_JOINED = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s*(?:and|or)\s*\}|\\q?quad(?![A-Za-z])|"
                     r"\\(?:land|lor|wedge|vee)(?![A-Za-z])|\s(?:and|or)\s")


def _top_level_split(latex: str) -> list[str]:
    """``latex`` split at its chain links outside braces; one part if a comma or semicolon
    separates values at the top level ("a = 1, b = 2" is two values, not a chain)."""
    depth, cuts = 0, []
    for m in re.finditer(r"[{}]|" + _CHAIN.pattern, latex):
        tok = m.group()
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        elif depth == 0:
            cuts.append(m.span())
    if not cuts or re.search(r"[,;]", _strip_braced(latex)) or _JOINED.search(latex):
        return [latex]
    parts, last = [], 0
    for a, b in cuts:
        parts.append(latex[last:a])
        last = b
    parts.append(latex[last:])
    return parts


def _strip_braced(s: str) -> str:
    out, depth = [], 0
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- final answers

def compare_answers(reference: str, answer: str) -> dict:
    """Whether ``answer`` equals ``reference``: numbers exactly (decimals to the digits shown),
    fractions, radicals, intervals (ends and openness), sets, tuples, simple expressions.

    Returns:
        ``{"status": "equal" | "not_equal" | "unparsable", "reference_parsed", "answer_parsed"}``.
    """
    if _norm_text(reference) == _norm_text(answer):
        return {"status": "equal", "how": "same_text"}
    if BASE_NOTATION.search(reference) or BASE_NOTATION.search(answer):
        # "52_8" is not 52: with a base subscript, only the same text is the same number.
        return {"status": "not_equal", "how": "base_notation_text_differs"}
    gold = _parse_answer(reference)
    pred = _parse_answer(answer)
    shown = {"reference_parsed": short(gold), "answer_parsed": short(pred)}
    if gold is None or pred is None:
        return {"status": "unparsable" if gold is None else "not_equal", **shown}
    equal = _equivalent(gold, pred)
    if not equal:
        for g, p in _percent_variants(reference, answer, gold, pred) + _decimal_comma_variants(reference, answer,
                                                                                             gold, pred):
            if _equivalent(g, p):
                equal = True
                break
    return {"status": "equal" if equal else "not_equal", **shown}


def _norm_text(s: str) -> str:
    s = LATEX_SPACING.sub("", s)
    s = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s.lower()


#: A whole answer that is one number with thousands separators ("-1,234,567.5", "x = 1,000").
_GROUPED_NUMBER = re.compile(r"(?:[a-zA-Z]\s*=\s*)?-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


@lru_cache(maxsize=4096)  # a reference is compared with many answers (Math-Verify caches too)
def _parse_answer(s: str) -> Any:
    from math_verify import parse
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    s = s.strip().strip("$").strip()
    s = re.sub(r"^\\\(|\\\)$", "", s)
    s = _last_value(s)  # "\frac{28}{4} = 7" is 7, "x = 2 + 3 = 5" is 5
    s = re.sub(r"\\text\{\s*(dollars?|cents?|units?|degrees?|cm|m|km|inches|feet|hours?|minutes?|"
               r"seconds?|days?|years?|miles?|people|students?)\s*\}", "", s)
    s = re.sub(r"\s*(dollars?|cents?|units?|students?|people|hours?|minutes?|days?|years?)\s*$", "", s)
    if _GROUPED_NUMBER.fullmatch(s):
        # "1,000,000" is a million; "(12,102)" is a pair and "1,2" a list, left alone.
        s = s.replace(",", "")
    # "\15" is a mistyped "\$15"; a row break "\\" before a digit is not.
    s = re.sub(r"(?<!\\)\\(?=\d)", "", s.replace("\\$", ""))
    if not s:
        return None
    found = parse(f"${s}$", extraction_config=(LatexExtractionConfig(),), parsing_timeout=None)
    if found and not isinstance(found[0], str):
        return found[0]
    # LaTeX did not read all of it. Plain expressions are read too, but only when the
    # expression read is the whole answer: "(1, 2) \cup" is not 2, "3 \text{ and } \frac{1}{"
    # is not 3 (a partial reading is never compared; the answer is unparsable).
    plain = parse(f"${s}$", extraction_config=(ExprExtractionConfig(),), parsing_timeout=None)
    if len(plain) >= 2 and re.sub(r"\s+", "", str(plain[1])) == re.sub(r"\s+", "", s):
        return plain[0]
    return None


def _percent_variants(reference: str, answer: str, gold: Any, pred: Any) -> list[tuple[Any, Any]]:
    """"10\\%" and "10" name the same answer; try the other reading of a lone percent sign."""
    ref_pct, ans_pct = "%" in reference, "%" in answer
    if ref_pct == ans_pct:
        return []
    if ref_pct:
        return [(_parse_answer(reference.replace("\\%", "").replace("%", "")), pred)]
    return [(gold, _parse_answer(answer.replace("\\%", "").replace("%", "")))]


#: A number written with a decimal comma ("1000,99", "-3,5"): one comma, and not a thousands
#: group ("12,102" is twelve thousand; "(12,102)" a pair, "1, 2" a list).
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")


def _decimal_comma_variants(reference: str, answer: str, gold: Any, pred: Any) -> list[tuple[Any, Any]]:
    """"1000,99" is 1000.99 where the other side is one number (not where it is a list)."""
    import sympy

    out = []
    for text, mine, other, first in ((answer, pred, gold, False), (reference, gold, pred, True)):
        bare = re.sub(r"\s+", "", text.strip().strip("$"))
        if (_DECIMAL_COMMA.fullmatch(bare) and not _GROUPED_NUMBER.fullmatch(bare)
                and isinstance(_unwrap(other), sympy.Expr) and _unwrap(other).is_number):
            read = _parse_answer(bare.replace(",", "."))
            out.append((read, other) if first else (other, read))
    return out


def _equivalent(a: Any, b: Any) -> bool:
    import sympy
    from sympy.sets.sets import Interval, Union

    if a is None or b is None:
        return False
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and _norm_text(a) == _norm_text(b)
    rel = sympy.core.relational.Relational
    if isinstance(a, rel) and isinstance(b, rel) and _relations_equal(a, b):
        return True  # "y = 2x + 1" and "2y = 4x + 2", before "y = ..." is read as its value
    a, b = _unchain(a), _unchain(b)
    if isinstance(a, rel) and isinstance(b, rel) and _relations_equal(a, b):
        return True
    sys_a, sys_b = _system_values(a), _system_values(b)
    if (sys_a is None) != (sys_b is None):
        # "x = 1, y = 2" is the pair (1, 2): values in the order of their unknowns' names
        values, other = (sys_a, b) if sys_a is not None else (sys_b, a)
        pair = _as_tuple(other)
        return pair is not None and len(pair) == len(values) and all(
            _equivalent(x, y) for x, y in zip(values, pair))
    a, b = _unwrap(a), _unwrap(b)
    if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
        return _match_all(list(a), list(b))
    if isinstance(a, (tuple, sympy.Tuple)) and isinstance(b, (tuple, sympy.Tuple)):
        return len(a) == len(b) and all(_equivalent(x, y) for x, y in zip(a, b))
    if isinstance(a, Interval) and isinstance(b, Interval):
        return (a.left_open == b.left_open and a.right_open == b.right_open
                and _equivalent(a.start, b.start) and _equivalent(a.end, b.end))
    if isinstance(a, Union) and isinstance(b, Union):
        return _match_all(list(a.args), list(b.args))
    if isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase):
        return a.shape == b.shape and all(_equivalent(x, y) for x, y in zip(a, b))
    if isinstance(a, (Interval, Union)) or isinstance(b, (Interval, Union)):
        # an interval against the inequality that describes it ("(0, 1)" and "0 < x < 1")
        sa, sb = (a if isinstance(a, (Interval, Union)) else _as_set(a),
                  b if isinstance(b, (Interval, Union)) else _as_set(b))
        if sa is not None and sb is not None and (sa is not a or sb is not b):
            return _equivalent(sa, sb)
    if isinstance(a, sympy.core.relational.Relational) and isinstance(b, sympy.core.relational.Relational):
        return _relations_equal(a, b)
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return _expr_equal(a, b)
    return a == b


def _unchain(e: Any) -> Any:
    """A chain ``x = 2 + 3 = 5`` as its ends ``x = 5`` (as written, like Math-Verify's
    ``take_last_relation``); a chain of numbers alone ("2 + 3 = 5") as its last value."""
    import sympy

    args = getattr(e, "_unsorted_args", None) if isinstance(e, sympy.And) else None
    if not args or not all(isinstance(x, sympy.Eq) for x in args):
        return e
    first, last = args[0].lhs, args[-1].rhs
    if not getattr(first, "free_symbols", True):
        return last
    return sympy.Eq(first, last, evaluate=False)


def _system_values(e: Any) -> list | None:
    """``{x = 1, y = 2}`` (values of distinct unknowns, named by one symbol each) as the
    values in the order of the names; ``None`` for anything else."""
    import sympy

    if not isinstance(e, sympy.FiniteSet) or len(e) < 2:
        return None
    eqs = list(e)
    if not all(isinstance(q, sympy.Eq) and isinstance(q.lhs, sympy.Symbol) and not q.rhs.free_symbols
               for q in eqs):
        return None
    if len({q.lhs for q in eqs}) != len(eqs):
        return None  # "x = 1 or x = 2": solutions, not a system
    return [q.rhs for q in sorted(eqs, key=lambda q: q.lhs.name)]


def _as_tuple(e: Any) -> list | None:
    """A tuple, or "(1, 2)" read as an open interval, as its entries."""
    import sympy
    from sympy.sets.sets import Interval

    if isinstance(e, (tuple, sympy.Tuple)):
        return list(e)
    if isinstance(e, Interval) and e.left_open and e.right_open:
        return [e.start, e.end]
    return None


def _relations_equal(a: Any, b: Any) -> bool:
    """The same relation: turned round, moved across, or scaled by a constant (positive for an
    inequality)."""
    import sympy

    a, b = _canonical_relation(a), _canonical_relation(b)
    if type(a) is not type(b):
        return False
    if not all(isinstance(side, sympy.Expr) for side in (a.lhs, a.rhs, b.lhs, b.rhs)):
        return False  # "x = [1, 2]" (x \in an interval) is a membership, not an equation
    da, db = a.lhs - a.rhs, b.lhs - b.rhs
    if _expr_equal(da, db) or (isinstance(a, (sympy.Eq, sympy.Ne)) and _expr_equal(da, -db)):
        return True
    # the same relation scaled ("2y = 4x + 2" is "y = 2x + 1"): a constant ratio, positive
    # for an inequality
    try:
        ratio = sympy.simplify(da / db) if db != 0 else None
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    if ratio is None or not ratio.is_number or ratio == 0 or ratio.has(sympy.zoo, sympy.nan):
        return False
    return bool(isinstance(a, (sympy.Eq, sympy.Ne)) or ratio.is_positive)


def _match_all(xs: list, ys: list) -> bool:
    if len(xs) != len(ys):
        return False
    ys = list(ys)
    for x in xs:
        hit = next((k for k, y in enumerate(ys) if _equivalent(x, y)), None)
        if hit is None:
            return False
        ys.pop(hit)
    return True


def _unwrap(e: Any) -> Any:
    """A labelled value stands for the value: ``x = 3``, ``(p,q) = (3,2)``, ``|AB| = 1``,
    ``f(x) = 3``; the label is a symbol, a tuple of symbols, a product of symbols (``AB``), or
    an absolute value or function of such, and the value names no unknown. ``2x = 6`` is not
    a label (a number multiplies the symbol)."""
    import sympy

    if isinstance(e, sympy.Eq) and _is_label(e.lhs):
        value = e.rhs
        if isinstance(e.lhs, sympy.Symbol) and not value.has(e.lhs):
            return value
        if not getattr(value, "free_symbols", True):
            return value
    return e


def _is_label(x: Any) -> bool:
    import sympy
    from sympy.core.function import AppliedUndef

    if isinstance(x, sympy.Symbol):
        return True
    if isinstance(x, (tuple, sympy.Tuple)):
        return len(x) > 0 and all(isinstance(y, sympy.Symbol) for y in x)
    if isinstance(x, sympy.Mul):
        return all(isinstance(y, sympy.Symbol) for y in x.args)
    if isinstance(x, sympy.Add):  # "A + B + C = 3" names the sum; "2x + 1 = 7" does not
        return all(isinstance(y, sympy.Symbol) or (isinstance(y, sympy.Mul) and _is_label(y)) for y in x.args)
    if isinstance(x, sympy.Abs):
        return _is_label(x.args[0])
    if isinstance(x, sympy.Pow):
        return isinstance(x.base, sympy.Symbol) and x.exp.is_number  # "x^3 = 12" names x^3
    # "f(x) = 3", "g(f(-3)) = 1": a function's value at unknowns, numbers or other such values
    return isinstance(x, AppliedUndef) and all(
        isinstance(y, sympy.Symbol) or isinstance(y, AppliedUndef) or (isinstance(y, sympy.Expr) and y.is_number)
        for y in x.args)


def _canonical_relation(r: Any) -> Any:
    """``5 \\geq x`` is ``x \\leq 5``: ``>``/``>=`` turned round into ``<``/``<=``."""
    import sympy

    if isinstance(r, sympy.GreaterThan):
        return sympy.LessThan(r.rhs, r.lhs, evaluate=False)
    if isinstance(r, sympy.StrictGreaterThan):
        return sympy.StrictLessThan(r.rhs, r.lhs, evaluate=False)
    return r


def _as_set(e: Any) -> Any:
    """A relation or a conjunction of relations in one unknown as the set it describes
    (``0 < x < 1`` is the interval ``(0, 1)``); ``None`` otherwise."""
    import sympy

    from sympy.core.function import AppliedUndef

    if not isinstance(e, (sympy.core.relational.Relational, sympy.And)) or isinstance(e, (sympy.Eq, sympy.Ne)):
        return None
    # "0 < f(x) < 1" bounds the value f(x): a function of the unknowns stands as one unknown
    e = e.xreplace({f: sympy.Symbol(f"{f.func.__name__}({', '.join(map(str, f.args))})", real=True)
                    for f in e.atoms(AppliedUndef)})
    symbols = e.free_symbols
    if len(symbols) != 1:
        return None
    try:
        return e.as_set()
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def _expr_equal(a: Any, b: Any) -> bool:
    """Exact equality; a written decimal matches to the precision it carries."""
    import sympy

    if a.has(sympy.zoo, sympy.nan) or b.has(sympy.zoo, sympy.nan):
        # Undefined values ("\frac{1}{0}", "12:00" read as 12/0) are never one answer: they
        # compare equal to each other in sympy, so this comes before ``a == b``.
        return False
    if a == b:
        return True
    if a.is_number and b.is_number:
        if a.is_Rational and b.is_Rational:
            return False
        if a.has(sympy.oo, -sympy.oo) or b.has(sympy.oo, -sympy.oo):
            return False
        # A decimal answer carries ~15 significant digits at most: demand agreement to 1e-9
        # relative; exact values must agree to 40 significant digits (1/2004! is not 1/2006!).
        rel_tol = 1e-9 if (a.has(sympy.Float) or b.has(sympy.Float)) else 1e-40
        try:
            an, bn = a.evalf(EVAL_DIGITS), b.evalf(EVAL_DIGITS)
            if not (an.is_number and bn.is_number):
                return False
            diff, scale = abs(an - bn), max(abs(complex(an)), abs(complex(bn)))
            if scale == 0 or scale == float("inf"):
                return bool(diff == 0)
            return bool(diff <= rel_tol * sympy.Max(abs(an), abs(bn)))
        except (TypeError, ValueError, OverflowError):
            return False
    if a.free_symbols != b.free_symbols:
        return False
    try:
        return sympy.simplify(a - b) == 0
    except (TypeError, ValueError, AttributeError):
        return False
