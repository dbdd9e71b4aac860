"""Checking one claim of a math step (``a op b`` from ``math_steps.find_claims``) with sympy.

A claim fails only if *every* plausible reading of it fails: standard precedence and
left-to-right for plain arithmetic, ``%`` as a percent and as a bare number; for LaTeX, the
readers of ``math_latex`` side by side and crossed. ``precheck`` lists, without sympy, the
claims not checked at all. ``check_claim`` runs inside the sympy judge's workers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

from halt_eval.judges.math_answer import BASE_NOTATION, EVAL_DIGITS, short
from halt_eval.judges.math_arith import Unreadable, arith
from halt_eval.judges.math_latex import LATEX_TEXT, MIXED, latex_arith, latex_fast, latex_sympy
from halt_eval.judges.math_steps import Claim

#: Longest operand handed to sympy, in characters; longer ones are not checked.
MAX_OPERAND_CHARS = 400
#: Significant digits from which a decimal input is taken to be rounded (2.8284, not 1.5).
ROUNDED_INPUT_DIGITS = 4
#: Relative tolerance for "approximately" (``\\approx``, ``≈``) claims.
APPROX_REL_TOL = 0.01


def check_claim(claim: Claim) -> dict:
    """Check one claim. Runs inside a worker (it may call sympy without a time limit).

    Returns:
        ``{"status": "true" | "false" | "unchecked", ...}`` with the values compared
        (``lhs_value``, ``rhs_value``, as strings), the ``reading`` that decided and, when
        unchecked, a ``why``.
    """
    if len(claim.lhs) > MAX_OPERAND_CHARS or len(claim.rhs) > MAX_OPERAND_CHARS:
        return {"status": "unchecked", "why": "too_long"}
    why = precheck(claim)
    if why is not None:
        return {"status": "unchecked", "why": why}
    outcomes: list[dict] = []
    readings = (_latex_readings(claim, lambda: any(o["status"] == "false" for o in outcomes))
                if claim.source == "latex" else _text_readings(claim))
    seen = set()
    decimals = _decimals(claim.lhs + " " + claim.rhs)
    for name, lhs, rhs in readings:
        if (str(lhs), str(rhs)) in seen:
            continue
        seen.add((str(lhs), str(rhs)))
        if name.startswith("identity"):
            outcome = _identity_outcome(lhs, rhs)
        else:
            outcome = _compare(lhs, rhs, claim.rel, decimals, _input_rounding(claim.lhs))
        outcome["reading"] = name
        if outcome["status"] == "true":
            return outcome
        outcomes.append(outcome)
        if name.startswith("identity"):
            break  # a failed identity is never flagged: another reader could only pass it
    decided = [o for o in outcomes if o["status"] == "false"]
    if decided and len(decided) == len(outcomes):
        return decided[0]
    if outcomes:
        return next(o for o in outcomes if o["status"] != "false")
    return {"status": "unchecked", "why": "unreadable"}


def precheck(claim: Claim) -> str | None:
    """Why ``claim`` cannot be checked, decided without sympy; ``None`` if it should be checked.

    * ``no_computation``: a plain-text first link with no operator on its left ("2 hours = 120
      minutes" restates with units).
    * ``base_notation``: a number written in another base (``2012_3``).
    * ``unit_conversion``: the two sides carry different units (``4 \\text{ hours} = 4 \\times 60``,
      ``13 \\text{ remainder } 4``).
    * ``no_computation``: neither side computes anything (``0 = -44`` concludes a contradiction).
    * ``notation``: brackets (``[22.8]`` is a floor) or ellipses.
    * ``ambiguous_function``: a function applied without parentheses next to a product or
      quotient (``\\log_{10} 8 / \\log_{10} 2``).
    * ``symbolic``: a LaTeX link with unknowns that is the first of its chain (a definition or
      an equation to solve), or whose other side has none (a substitution).
    """
    if BASE_NOTATION.search(claim.lhs) or BASE_NOTATION.search(claim.rhs):
        return "base_notation"
    if claim.source != "latex":
        if claim.source == "text" and claim.link == 0 and not re.search(r"[-+*/^]", claim.lhs.lstrip("-")):
            return "no_computation"
        return None
    if _units(claim.lhs) != _units(claim.rhs):
        return "unit_conversion"
    if not any(_OPERATION.search(side.strip().lstrip("-+")) for side in (claim.lhs, claim.rhs)):
        return "no_computation"
    if "[" in claim.lhs + claim.rhs or "\\cdots" in claim.lhs + claim.rhs or "\\ldots" in claim.lhs + claim.rhs:
        return "notation"
    if any(_BARE_FUNCTION.search(side) and _PRODUCT.search(side) for side in (claim.lhs, claim.rhs)):
        return "ambiguous_function"
    left, right = _has_unknowns(claim.lhs), _has_unknowns(claim.rhs)
    if (left or right) and (claim.link == 0 or left != right or claim.rel != "="):
        return "symbolic"
    return None


def names_no_unknown(claim: Claim) -> bool:
    """Whether both sides are plain numbers and operations (no unknown, no named quantity):
    a claim the judge should be able to evaluate. Plain-text claims always are."""
    if claim.source != "latex":
        return True
    sides = claim.lhs + " " + claim.rhs
    return not (_GREEK.search(sides) or _has_unknowns(claim.lhs) or _has_unknowns(claim.rhs))


# Greek letters name unknowns (\pi is a number).
_GREEK = re.compile(r"\\(?:alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|"
                    r"lambda|mu|nu|xi|rho|sigma|tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|"
                    r"Lambda|Xi|Sigma|Phi|Psi|Omega)(?![a-zA-Z])")


_OPERATION = re.compile(r"[-+*/^!]|\\(?:frac|dfrac|tfrac|sqrt|times|cdot|div|binom|sin|cos|tan|log|ln|pi|lceil|lfloor)"
                        r"|\d\s*\(")
_BARE_FUNCTION = re.compile(r"\\(?:sin|cos|tan|sec|csc|cot|log|ln)(?:_\{?[^{}\s]*\}?)?\s*[^\s({\\^]")
_PRODUCT = re.compile(r"[/*]|\\(?:cdot|times|div|frac)")


def _units(latex: str) -> list[str]:
    """The unit words written in ``\\text{}`` after numbers, in order."""
    return [re.sub(r"[^a-z]", "", m.group(1).lower()) for m in _UNIT_TEXT_WORDS.finditer(latex)]


_UNIT_TEXT_WORDS = re.compile(r"(?<=[\d}%])\s*\\(?:text|mbox|mathrm)\s*\{([^{}]*)\}")
_UNIT_TEXT = re.compile(r"(?<=[\d}%])\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}")
_COMMAND = re.compile(r"\\[a-zA-Z]+")


def _has_unknowns(latex: str) -> bool:
    """Whether ``latex`` names an unknown: a letter outside commands, or a ``\\text{}`` that is
    not a unit after a number ("\\text{Chenny's Age} - 4" names a quantity)."""
    s = _UNIT_TEXT.sub(" ", latex)
    if LATEX_TEXT.search(s):
        return True
    s = re.sub(r"\\operatorname\s*\{[^{}]*\}", " ", s)
    return re.search(r"[a-zA-Z]", _COMMAND.sub(" ", s)) is not None


def _input_rounding(text: str) -> float:
    """Relative error a computation may carry from rounded decimal inputs: a decimal with four
    or more significant digits (2.8284) looks rounded; fewer (1.5) are taken as exact."""
    sig = [len(m.lstrip("0.").replace(".", "")) for m in re.findall(r"\d+\.\d+", text)]
    sig = [n for n in sig if n >= ROUNDED_INPUT_DIGITS]
    return 2 * 10.0 ** -(min(sig) - 1) if sig else 0.0


def _decimals(text: str) -> int:
    return max((len(m) for m in re.findall(r"\d\.(\d+)", text)), default=0)


def _compare(lhs: Any, rhs: Any, rel: str, decimals: int, input_rel: float = 0.0) -> dict:
    import sympy

    if lhs is None or rhs is None:
        return {"status": "unchecked", "why": "unreadable"}
    if isinstance(lhs, Fraction) and isinstance(rhs, Fraction):
        lv, rv = lhs, rhs
        shown = {"lhs_value": str(lhs), "rhs_value": str(rhs)}
        diff = abs(float(lv - rv))
        exact_equal = lv == rv
        lf, rf = float(lv), float(rv)
    else:
        lv, rv = (sympy.Rational(x.numerator, x.denominator) if isinstance(x, Fraction) else sympy.sympify(x)
                  for x in (lhs, rhs))
        if lv.free_symbols or rv.free_symbols or _has_function(lv) or _has_function(rv):
            return {"status": "unchecked", "why": "symbolic"}
        try:
            ln, rn = lv.evalf(EVAL_DIGITS), rv.evalf(EVAL_DIGITS)
        except (AttributeError, TypeError, ValueError) as e:
            return {"status": "unchecked", "why": "not_a_number", "error": f"{type(e).__name__}: {e}"[:200]}
        shown = {"lhs_value": short(ln), "rhs_value": short(rn)}
        if not (ln.is_number and rn.is_number) or ln.has(sympy.zoo, sympy.nan) or rn.has(sympy.zoo, sympy.nan):
            return {"status": "unchecked", "why": "not_a_number", **shown}
        if not (ln.is_real and rn.is_real):
            if rel != "=":
                return {"status": "unchecked", "why": "complex_order", **shown}
            diff = float(abs(ln - rn))
            scale = max(1.0, float(abs(rn)))
            return {"status": "true" if diff <= 1e-30 * scale else "false", **shown}
        lf, rf = float(ln), float(rn)
        diff = abs(float(ln - rn))
        exact_equal = diff <= 1e-30 * max(1.0, abs(rf))
    if rel in ("=", "~"):
        tol = 10.0 ** -decimals if decimals else 0.0
        if rel == "~":
            tol = max(tol, APPROX_REL_TOL * max(abs(lf), abs(rf)), 0.0 if decimals else 1.0)
        if exact_equal or diff <= tol * (1 + 1e-9):
            return {"status": "true", **shown}
        if input_rel and diff <= input_rel * max(abs(lf), abs(rf)):
            return {"status": "true", "why": "rounded_inputs", **shown}
        rounded = (not decimals and diff < 1 and (float(lf).is_integer() != float(rf).is_integer()))
        if rounded:
            return {"status": "true", "why": "rounded", **shown}
        return {"status": "false", **shown}
    holds = {"<": lf < rf, ">": lf > rf, "<=": lf <= rf or exact_equal, ">=": lf >= rf or exact_equal,
             "!=": not exact_equal}[rel]
    return {"status": "true" if holds else "false", **shown}


def _has_function(expr: Any) -> bool:
    from sympy.core.function import AppliedUndef

    return bool(expr.atoms(AppliedUndef))


def _text_readings(claim: Claim) -> list[tuple[str, Any, Any]]:
    """Readings of a plain-text claim: precedence × percent, and left to right."""
    out = []
    for percent in (True, False):
        for ltr in (False, True):
            try:
                lhs = arith(claim.lhs, percent=percent, left_to_right=ltr)
                rhs = arith(claim.rhs, percent=percent, left_to_right=ltr)
            except (Unreadable, ZeroDivisionError, OverflowError):
                continue
            name = ("left_to_right" if ltr else "precedence") + ("" if percent else ",percent_as_number")
            out.append((name, lhs, rhs))
    return out


def _latex_readings(claim: Claim, failed: Callable[[], bool]) -> Iterator[tuple[str, Any, Any]]:
    """Readings of a LaTeX claim, cheapest first; later ones are only built if needed.

    First both sides by the same reader (our arithmetic reader, the fast reader, latex2sympy
    with and without mixed numbers); then every cross pair, since one reader may misread one
    side only (latex2sympy reads "2(63)" as 65). Cross pairs are only tried when ``failed()``
    says some reading failed: they can rescue a claim from a misreading, nothing else.
    """
    for percent in (True, False):
        try:
            yield ("arithmetic" + ("" if percent else ",percent_as_number"),
                   latex_arith(claim.lhs, percent), latex_arith(claim.rhs, percent))
        except (Unreadable, ZeroDivisionError, OverflowError):
            pass
    for name, read in _SIDE_READERS:
        lhs, rhs = read(claim.lhs), read(claim.rhs)
        if lhs is not None and rhs is not None:
            yield from _pair(claim, name, lhs, rhs)
    if not failed():
        return
    sides = [[(name, v) for name, read in _SIDE_READERS if (v := read(text)) is not None]
             for text in (claim.lhs, claim.rhs)]
    for lname, lhs in sides[0]:
        for rname, rhs in sides[1]:
            if lname != rname:
                yield from _pair(claim, f"{lname}|{rname}", lhs, rhs)


def _pair(claim: Claim, name: str, lhs: Any, rhs: Any) -> Iterator[tuple[str, Any, Any]]:
    """A numeric pair as is; a symbolic one only as an identity continuing a chain."""
    if getattr(lhs, "free_symbols", None) or getattr(rhs, "free_symbols", None):
        if claim.link > 0 and claim.rel == "=" and not _NO_IDENTITY.search(claim.lhs + claim.rhs):
            yield ("identity," + name, lhs, rhs)
        return
    yield (name, lhs, rhs)


def _arith_or_none(text: str) -> Fraction | None:
    try:
        return latex_arith(text, True)
    except (Unreadable, ZeroDivisionError, OverflowError):
        return None


def _latex_sympy_plain(text: str) -> Any:
    return latex_sympy(text, False) if MIXED.search(text) else None


_SIDE_READERS = (
    ("arithmetic", _arith_or_none),
    ("fast", lambda text: latex_fast(text)),
    ("latex2sympy", lambda text: latex_sympy(text, True)),
    ("latex2sympy,no_mixed_numbers", _latex_sympy_plain),
)
# Identities are not checked through absolute values (|x| = x needs a sign), primes
# (derivatives), a function applied without parentheses (\sin\theta(2x) is ambiguous), or
# the letters i and e (the imaginary unit and Euler's number, or unknowns).
_NO_IDENTITY = re.compile(
    r"\||\\[lr]vert|\\mid|'|\\(?:sin|cos|tan|sec|csc|cot|log|ln)(?!\s*[({])|(?<![a-zA-Z\\])[ie](?![a-zA-Z])"
)


def _identity_outcome(lhs: Any, rhs: Any) -> dict:
    """``lhs = rhs`` for all values of the unknowns: simplify, then three exact sample points."""
    import sympy

    shown = {"lhs_value": short(lhs), "rhs_value": short(rhs)}
    if _has_function(lhs) or _has_function(rhs) or lhs.free_symbols != rhs.free_symbols:
        return {"status": "unchecked", "why": "symbolic", **shown}
    diff = lhs - rhs
    if sympy.expand(diff) == 0:
        return {"status": "true", **shown}
    symbols = sorted(diff.free_symbols, key=str)
    values = []
    for k, point in enumerate(_SAMPLE_POINTS):
        at = {s: sympy.Rational(point[0] + j, point[1] + 2 * j) for j, s in enumerate(symbols)}
        v = diff.subs(at).evalf(EVAL_DIGITS)
        if not v.is_number or v.has(sympy.zoo, sympy.nan):
            return {"status": "unchecked", "why": "undefined_at_sample", **shown}
        values.append(abs(v))
    if all(v <= 1e-30 for v in values):
        return {"status": "true", "how": "sampled", **shown}
    if all(v > 1e-9 for v in values):
        # Not flagged: a chain of symbolic equalities is as often a system of conditions
        # ("a^2b + c = b^2c + a = c^2a + b") as a chain of identities.
        return {"status": "unchecked", "why": "not_an_identity", "how": "sampled",
                "differences": [short(v) for v in values], **shown}
    return {"status": "unchecked", "why": "inconclusive", **shown}


# Exact sample points (numerator, denominator), away from small integers where
# expressions tend to vanish or be undefined.
_SAMPLE_POINTS = ((7, 3), (-5, 11), (13, 17))
