"""Splitting test asserts into calls (run in the sandbox) and a comparison (run here).

An assert such as ``assert f(3) == [1, 2]``, ``assert abs(candidate(1.5) - 0.5) < 1e-6``,
``assert math.isclose(area(2), 12.56, rel_tol=1e-3)``, ``assert not f("x")`` or
``assert set(f(a)) == {1, 2}`` becomes:

- *holes*: the calls of the code under test (``f(3)``, ``candidate(1.5)``), each the whole
  call with its arguments. The sandboxed child evaluates them and sends back their values
  as plain data; it never sees the rest of the assert, so never the expected output;
- a *host expression*: the assert's test with each hole replaced by its value, evaluated
  here by a small interpreter over plain data (constants, containers, arithmetic with
  size guards, comparisons, ``and``/``or``/``not``, subscripts, and a fixed set of pure
  builtins and ``math`` functions). A value's own ``__eq__`` never runs: the values are
  rebuilt here from the wire as built-in types.

The code under test is ``candidate`` (HumanEval's ``check(candidate)``) or the names the
reference solution defines at top level (MBPP). An assert whose test needs anything else
(another name, a method call on a result, a comprehension, a lambda) cannot be split;
``split_assert`` returns ``None`` and the judge runs it in the sandbox as before, marking
the verdict ``trusted_comparison: false``.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Pure functions the host expression may call (on plain data only).
HOST_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "len": len, "sorted": sorted, "set": set, "frozenset": frozenset,
    "list": list, "tuple": tuple, "dict": dict, "int": int, "float": float, "str": str,
    "bool": bool, "min": min, "max": max, "sum": sum, "all": all, "any": any, "complex": complex,
    "isinstance": isinstance, "type": type, "reversed": reversed, "range": range, "repr": repr,
}
# Names of types the host expression may mention (``isinstance(x, int)``).
HOST_NAMES: dict[str, Any] = {k: HOST_FUNCS[k] for k in
                              ("int", "float", "str", "list", "tuple", "dict", "set", "bool",
                               "frozenset", "complex")}
MATH_FUNCS = {"isclose", "fabs", "sqrt", "floor", "ceil", "isnan", "isinf", "isfinite", "log", "log2",
              "log10", "exp", "pow", "trunc", "gcd", "factorial", "comb", "perm", "prod", "fsum",
              "sin", "cos", "tan", "atan", "atan2", "hypot", "degrees", "radians"}
MATH_CONSTS = {"pi", "e", "inf", "nan", "tau"}
# Largest sequence a host operation may build (repetition, range).
MAX_BUILD = 10_000_000
# Largest exponent of an integer power on the host.
MAX_EXPONENT = 100_000
HOLE = "__hole_"

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
}
_CMPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}


class NotSplittable(Exception):
    """The assert's test needs something the host interpreter does not do."""


class HostError(Exception):
    """The host expression failed on the values (a type error, a guard)."""


@dataclass(frozen=True)
class Split:
    """One assert, split.

    Attributes:
        expr: The test with each hole replaced by ``Name("__hole_<j>")``.
        holes: Source of each hole (a call of the code under test), in evaluation order.
        src: The assert's source, for evidence.
    """

    expr: ast.expr
    holes: tuple[str, ...]
    src: str


@functools.lru_cache(maxsize=4096)
def split_assert(src: str, under_test: frozenset[str] | None) -> Split | None:
    """Split one assert statement, or ``None`` when it cannot be split.

    Args:
        src: Source of one statement.
        under_test: Names whose calls are holes; ``None``: any called name that is not a
            host function.
    """
    try:
        tree = ast.parse(src.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    holes: list[str] = []
    try:
        expr = _visit(tree.body[0].test, under_test, holes)
    except (NotSplittable, RecursionError):
        return None
    return Split(expr, tuple(holes), src.strip())


def _is_hole(node: ast.AST, under_test: frozenset[str] | None) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    name = node.func.id
    if under_test is None:
        return name not in HOST_FUNCS and name != "math"
    return name in under_test


def _visit(node: ast.AST, under_test: frozenset[str] | None, holes: list[str]) -> ast.expr:
    if _is_hole(node, under_test):
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id.startswith(HOLE):
                raise NotSplittable("reserved name")
        holes.append(ast.unparse(node))
        return ast.Name(f"{HOLE}{len(holes) - 1}", ast.Load())
    if isinstance(node, ast.Constant):
        return node
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise NotSplittable("starred")
        return type(node)([_visit(e, under_test, holes) for e in node.elts], *(
            [ast.Load()] if not isinstance(node, ast.Set) else []))
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotSplittable("dict unpacking")
        return ast.Dict([_visit(k, under_test, holes) for k in node.keys],
                        [_visit(v, under_test, holes) for v in node.values])
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return ast.UnaryOp(node.op, _visit(node.operand, under_test, holes))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return ast.BinOp(_visit(node.left, under_test, holes), node.op, _visit(node.right, under_test, holes))
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(node.op, [_visit(v, under_test, holes) for v in node.values])
    if isinstance(node, ast.Compare) and all(type(op) in _CMPS for op in node.ops):
        return ast.Compare(_visit(node.left, under_test, holes), node.ops,
                           [_visit(c, under_test, holes) for c in node.comparators])
    if isinstance(node, ast.IfExp):
        return ast.IfExp(*(_visit(x, under_test, holes) for x in (node.test, node.body, node.orelse)))
    if isinstance(node, ast.Subscript):
        return ast.Subscript(_visit(node.value, under_test, holes), _visit(node.slice, under_test, holes), ast.Load())
    if isinstance(node, ast.Slice):
        return ast.Slice(*(None if x is None else _visit(x, under_test, holes)
                           for x in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Name):
        if node.id in HOST_NAMES or node.id in ("True", "False", "None"):
            return node
        raise NotSplittable(f"name {node.id}")
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in MATH_CONSTS:
            return node
        raise NotSplittable("attribute")
    if isinstance(node, ast.Call):
        func = node.func
        ok = (isinstance(func, ast.Name) and func.id in HOST_FUNCS) or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id == "math" and func.attr in MATH_FUNCS)
        if not ok or any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise NotSplittable("call")
        return ast.Call(func, [_visit(a, under_test, holes) for a in node.args],
                        [ast.keyword(k.arg, _visit(k.value, under_test, holes)) for k in node.keywords])
    raise NotSplittable(type(node).__name__)


def evaluate(split: Split, values: list[Any]) -> tuple[bool, dict[str, str]]:
    """Whether the assert holds for the holes' values, and what to show when it does not.

    Raises:
        HostError: the expression fails on these values (the answer's values: a failure).
    """
    env = {f"{HOLE}{j}": v for j, v in enumerate(values)}
    try:
        ok = bool(_eval(split.expr, env))
    except HostError:
        raise
    except (ArithmeticError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            RecursionError, MemoryError) as e:
        raise HostError(f"{type(e).__name__}: {e}"[:300]) from None
    if ok:
        return True, {}
    shown: dict[str, str] = {}
    node = split.expr
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        try:
            shown = {"actual": _short(repr(_eval(node.left, env))),
                     "expected": _short(repr(_eval(node.comparators[0], env)))}
        except Exception:  # noqa: BLE001 - evidence only
            shown = {}
    if not shown:
        shown = {"actual": _short(repr(values[0] if len(values) == 1 else values))}
    return False, shown


def _short(s: str) -> str:
    return s if len(s) <= 300 else s[:300] + "..."


def _eval(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in HOST_NAMES:
            return HOST_NAMES[node.id]
        return {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.List):
        return [_eval(e, env) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, env) for e in node.elts)
    if isinstance(node, ast.Set):
        return {_eval(e, env) for e in node.elts}
    if isinstance(node, ast.Dict):
        return {_eval(k, env): _eval(v, env) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env))
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        _guard(node.op, a, b)
        return _BINOPS[type(node.op)](a, b)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            v = True
            for x in node.values:
                v = _eval(x, env)
                if not v:
                    return v
            return v
        v = False
        for x in node.values:
            v = _eval(x, env)
            if v:
                return v
        return v
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env)
            if not _CMPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, env) if _eval(node.test, env) else _eval(node.orelse, env)
    if isinstance(node, ast.Subscript):
        return _eval(node.value, env)[_eval(node.slice, env)]
    if isinstance(node, ast.Slice):
        return slice(*(None if x is None else _eval(x, env) for x in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Attribute):
        return getattr(math, node.attr)
    if isinstance(node, ast.Call):
        func = node.func
        fn = HOST_FUNCS[func.id] if isinstance(func, ast.Name) else getattr(math, func.attr)
        args = [_eval(a, env) for a in node.args]
        kwargs = {k.arg: _eval(k.value, env) for k in node.keywords}
        if fn is range and len(range(*args)) > MAX_BUILD:
            raise HostError("range too large for the host")
        if fn in (math.factorial, math.comb, math.perm) and any(type(a) is int and a > 100_000 for a in args):
            raise HostError("argument too large for the host")
        result = fn(*args, **kwargs)
        if fn is reversed:
            result = list(result)
        return result
    raise HostError(f"cannot evaluate {type(node).__name__}")


def _guard(op: ast.operator, a: Any, b: Any) -> None:
    """Refuse host operations whose result would be huge (the operands may be the answer's)."""
    if isinstance(op, ast.Mult):
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_BUILD:
                raise HostError("repetition too large for the host")
    if isinstance(op, ast.Pow) and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > MAX_EXPONENT:
        raise HostError("power too large for the host")


def reference_names(solution: Any) -> frozenset[str] | None:
    """Names a reference solution defines at top level (functions, classes, assignments)."""
    if not isinstance(solution, str):
        return None
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names) or None


__all__ = ["HostError", "Split", "evaluate", "reference_names", "split_assert"]
