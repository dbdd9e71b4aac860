"""Exact plain arithmetic: numbers, ``+ - * / ^``, parentheses and ``%``, as ``Fraction``.

``arith`` reads a claim's side with standard precedence or left to right, and a ``%`` as a
percent or as a bare number; the math judge tries every reading (``math_claims``).
"""

from __future__ import annotations

import re
from fractions import Fraction

#: Largest exponent the arithmetic reader evaluates exactly (2**10000 has ~3000 digits).
MAX_EXPONENT = 10_000


class Unreadable(ValueError):
    """An operand one reader cannot read (another reader may)."""


# Plain arithmetic: numbers, + - * / ^, parentheses and %.
_ARITH_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\*\*|[-+*/^()%]))")


def arith(text: str, *, percent: bool, left_to_right: bool) -> Fraction:
    """Evaluate plain arithmetic exactly; implicit products like ``2(3)`` are read as products."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ARITH_TOKEN.match(text, pos)
        if not m:
            raise Unreadable(text)
        tok = m.group(1) or m.group(2)
        if tok == "**":
            tok = "^"
        if tokens and (tok == "(" or m.group(1)) and (tokens[-1] == ")" or _is_num(tokens[-1]) or tokens[-1] == "%"):
            tokens.append("*")
        tokens.append(tok)
        pos = m.end()
    if not tokens:
        raise Unreadable(text)
    value, k = _expr(tokens, 0, percent, left_to_right)
    if k != len(tokens):
        raise Unreadable(text)
    return value


def _is_num(tok: str) -> bool:
    return tok[0].isdigit() or tok[0] == "."


# Binary operator levels, loosest first: standard precedence, or one level read left to right.
_LEVELS = (("+", "-"), ("*", "/"))
_LEFT_TO_RIGHT = (("+", "-", "*", "/"),)


def _expr(tokens: list[str], k: int, percent: bool, ltr: bool, level: int = 0) -> tuple[Fraction, int]:
    """One binary level (left-associative): its operands are the next level's, or unary terms."""
    levels = _LEFT_TO_RIGHT if ltr else _LEVELS
    if level == len(levels):
        return _unary(tokens, k, percent, ltr)
    value, k = _expr(tokens, k, percent, ltr, level + 1)
    while k < len(tokens) and tokens[k] in levels[level]:
        op = tokens[k]
        rhs, k = _expr(tokens, k + 1, percent, ltr, level + 1)
        value = _apply(op, value, rhs)
    return value, k


def _unary(tokens, k, percent, ltr):
    if k < len(tokens) and tokens[k] in "+-":
        sign = tokens[k]
        value, k = _unary(tokens, k + 1, percent, ltr)
        return (-value if sign == "-" else value), k
    return _power(tokens, k, percent, ltr)


def _power(tokens, k, percent, ltr):
    base, k = _atom(tokens, k, percent, ltr)
    if k < len(tokens) and tokens[k] == "^":
        exp, k = _unary(tokens, k + 1, percent, ltr)
        if exp.denominator != 1 or abs(exp) > MAX_EXPONENT:
            raise Unreadable("exponent")
        base = base ** int(exp)
    return base, k


def _atom(tokens, k, percent, ltr):
    if k >= len(tokens):
        raise Unreadable("end")
    tok = tokens[k]
    if tok == "(":
        value, k = _expr(tokens, k + 1, percent, ltr)
        if k >= len(tokens) or tokens[k] != ")":
            raise Unreadable("paren")
        k += 1
    elif _is_num(tok):
        value = Fraction(tok)
        k += 1
    else:
        raise Unreadable(tok)
    if k < len(tokens) and tokens[k] == "%":
        if percent:
            value /= 100
        k += 1
    return value, k


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b
