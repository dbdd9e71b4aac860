"""Final answers: finding the one an answer states, and grading it against the reference.

``extract_final_answer`` takes the last ``\\boxed{}``, else the last ``#### N`` line, else the
last "the answer is ..."; ``compare_answers`` decides equality through Math-Verify's parser and
sympy (numbers exactly, decimals to the digits shown, fractions, radicals, intervals, sets,
tuples, simple expressions). Comparisons run inside the sympy judge's workers (no time limit
here).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

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
_HASHES = re.compile(r"^\s*####\s*(?P<a>.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(?P<a>\$[^$]+\$|\\\(.+?\\\)|[^\n]+?)(?:\.\s|\.?\s*$|\n)",
    re.IGNORECASE,
)


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in ``text``: the last ``\\boxed{}``, else the last ``#### N``
    line, else the last "the answer is ..."; ``None`` if there is none."""
    found = ranked_final_answer(text)
    return found[1] if found else None


def ranked_final_answer(text: str) -> tuple[int, str] | None:
    """``(rank, answer)``: rank 0 for a box, 1 for ``####``, 2 for "the answer is"."""
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
        while inner is not None:
            answer = inner.group("a").strip()
            inner = _ANSWER_IS.search(answer + "\n")
        for a, b in (("$", "$"), ("\\(", "\\)")):
            if answer.startswith(a) and answer.endswith(b) and len(answer) > len(a) + len(b):
                answer = answer[len(a):-len(b)].strip()
        return (2, answer) if answer else None
    return None


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
        for g, p in _percent_variants(reference, answer, gold, pred):
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
    if isinstance(x, sympy.Abs):
        return _is_label(x.args[0])
    return isinstance(x, AppliedUndef) and all(isinstance(y, sympy.Symbol) for y in x.args)


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

    if not isinstance(e, (sympy.core.relational.Relational, sympy.And)) or isinstance(e, (sympy.Eq, sympy.Ne)):
        return None
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
