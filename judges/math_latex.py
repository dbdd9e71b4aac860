"""Readers of LaTeX operands: our exact arithmetic reader, a fast ``parse_expr`` reader and
latex2sympy (with and without mixed numbers). Each returns ``None`` (or raises ``Unreadable``)
for what it cannot read; ``math_claims`` runs them side by side."""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from halt_eval.judges.math_arith import Unreadable, arith

LATEX_SPACING = re.compile(r"\\left|\\right|\\boxed|\\[!,;:> ]|\\displaystyle|\\cdotp")
LATEX_TEXT = re.compile(r"\\(?:text|mbox|mathrm|textbf|textrm|operatorname)\s*\{[^{}]*\}")
DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")


def latex_arith(text: str, percent: bool) -> Fraction:
    """Read LaTeX arithmetic (``\\frac``, ``\\times``, ``\\div``, ``^{}``) with ``arith``."""
    s = LATEX_SPACING.sub(" ", text)
    s = LATEX_TEXT.sub(" ", s)
    s = DEGREES.sub(" ", s).replace("\\$", " ").replace("\\%", "%")
    s = re.sub(r"\\[dt]?frac\s*\{", r"\\frac{", s)
    s = re.sub(r"\\frac\s*(\d)(\d)", r"\\frac{\1}{\2}", s)
    for _ in range(8):
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        if new == s:
            break
        s = new
    s = s.replace("\\times", "*").replace("\\cdot", "*").replace("\\ast", "*").replace("\\div", "/")
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})|(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = s.replace("{", "(").replace("}", ")")
    if "\\" in s or re.search(r"[a-zA-Z]", s):
        raise Unreadable(text)
    return arith(s, percent=percent, left_to_right=False)


_FAST_COMMANDS = {
    r"\sqrt": "sqrt", r"\pi": "pi", r"\sin": "sin", r"\cos": "cos", r"\tan": "tan",
    r"\ln": "log", r"\log": "log", r"\cdot": "*", r"\times": "*", r"\div": "/",
}
_FAST_LEFTOVER = re.compile(r"\\|[_'|&!\[\]]|[a-zA-Z]{2,}")


@lru_cache(maxsize=4096)
def latex_fast(text: str) -> Any:
    """A fast reader for simple LaTeX (fractions, roots, powers, pi, sin/cos/tan/log, one-letter
    unknowns) through ``sympy.parse_expr``; ``None`` for anything else, which latex2sympy reads."""
    import sympy
    from tokenize import TokenError

    from sympy.parsing.sympy_parser import (
        implicit_multiplication, parse_expr, standard_transformations,
    )

    s = LATEX_SPACING.sub(" ", text)
    s = LATEX_TEXT.sub(" ", s)
    s = DEGREES.sub(" *pi/180 ", s)
    if re.search(r"\\(?:sin|cos|tan|log|ln)\s*\^|\\log_", s):
        return None
    s = re.sub(r"\\[dt]?frac\s*(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\[dt]?frac\s*\{", r"\\frac{", s)
    s = re.sub(r"\\left\s*\|(.*?)\\right\s*\|", r"Abs(\1)", s)
    s = re.sub(r"(\d+)\s*!", r"factorial(\1)", s)
    for _ in range(8):
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        new = re.sub(r"\\[dt]?binom\{([^{}]*)\}\{([^{}]*)\}", r"binomial(\1,\2)", new)
        new = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", new)
        if new == s:
            break
        s = new
    for cmd, py in _FAST_COMMANDS.items():
        s = re.sub(re.escape(cmd) + r"(?![a-zA-Z])", f" {py} ", s)
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})|(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    known = {"sqrt", "pi", "sin", "cos", "tan", "log", "Abs", "factorial", "binomial"}
    words = set(re.findall(r"[a-zA-Z]+", s)) - known
    if _FAST_LEFTOVER.search(re.sub(r"\b(?:" + "|".join(known) + r")\b", " ", s)) or any(len(w) > 1 for w in words):
        return None
    local = {w: sympy.Symbol(w) for w in words}
    local.update(pi=sympy.pi, sqrt=sympy.sqrt, sin=sympy.sin, cos=sympy.cos, tan=sympy.tan, log=sympy.log,
                 Abs=sympy.Abs, factorial=sympy.factorial, binomial=sympy.binomial)
    try:
        expr = parse_expr(s, local_dict=local, transformations=standard_transformations + (implicit_multiplication,),
                          evaluate=False)
    except (SyntaxError, TypeError, ValueError, TokenError, AttributeError, ZeroDivisionError):
        return None
    return expr if isinstance(expr, sympy.Expr) else None


# A number right before a fraction or a parenthesis: latex2sympy may read it as a mixed number.
MIXED = re.compile(r"\d\s*(?:\(|\\left|\\[dt]?frac|\{)")


@lru_cache(maxsize=4096)
def latex_sympy(text: str, mixed: bool) -> Any:
    """Parse LaTeX with latex2sympy2_extended (case kept, degrees as pi/180); ``None`` if it fails.

    ``mixed`` reads a number before a fraction or parenthesis as a mixed number.
    """
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig

    s = LATEX_TEXT.sub(" ", text)
    s = DEGREES.sub(r"\\cdot\\frac{\\pi}{180}", s).strip()
    if not s:
        return None
    try:
        expr = latex2sympy(s, conversion_config=ConversionConfig(lowercase_symbols=False,
                                                                       interpret_as_mixed_fractions=mixed))
    except Exception:  # noqa: BLE001 - an unreadable operand is simply not checked
        return None
    import sympy

    return expr if isinstance(expr, sympy.Expr) else None
