"""Reading a program's result channel on the host: untrusted bytes in, plain data out.

The child writes one JSON object per line (see ``_sandbox_runner``). Everything on that
channel is the answer's to write, so it is read defensively: a bounded size (the server
already cut it at ``Limits.result_bytes``), a bounded nesting depth, a closed set of record
shapes and value tags, no duplicate records, and decoding only into ``None``, ``bool``,
``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``
and ``Opaque`` (an object the answer could not serialise, equal to nothing). Anything else
raises ``BadResult``, which the judge turns into an ``incorrect`` verdict: a malformed
result is the answer's fault.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# Nesting depth of a value on the wire (each tuple/set/dict level costs two).
MAX_WIRE_DEPTH = 128
# Characters of a string kept in an error record.
MAX_TEXT = 2000
STEP_STATUSES = {"eval": {"ok", "error", "timeout"}, "call": {"ok", "error", "timeout"},
                 "stdio": {"ok", "error", "timeout"}, "exec": {"ok", "error", "timeout"},
                 "test": {"pass", "fail", "error", "timeout"}}
_TAGS = {"$tuple", "$set", "$dict", "$int", "$float", "$complex", "$bytes", "$repr"}


class BadResult(ValueError):
    """The result channel held something no honest run writes."""


class Opaque:
    """A value the program could not send as plain data (shown by its repr); equals nothing."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<opaque {self.text}>"

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


@dataclass
class Records:
    """The validated records of one run."""

    load: dict | None = None
    steps: dict[int, dict] = field(default_factory=dict)
    done: bool = False


def parse(data: bytes, step_types: list[str]) -> Records:
    """Validate one run's result channel.

    Raises:
        BadResult: malformed, oversized or too deeply nested data, an unknown record or tag,
            a duplicate record or a status that does not fit its step.
    """
    out = Records()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadResult("the result channel is not UTF-8") from None
    for n, line in enumerate(text.split("\n")):
        if not line:
            continue
        try:
            rec = json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as e:
            raise BadResult(f"result line {n + 1} is not valid JSON ({type(e).__name__})") from None
        if not isinstance(rec, dict):
            raise BadResult(f"result line {n + 1} is not an object")
        if out.done:
            raise BadResult("a record after the end record")
        keys = set(rec)
        if keys == {"done"} and rec["done"] is True:
            out.done = True
        elif "load" in rec:
            if out.load is not None or out.steps or not keys <= {"load", "e"} or type(rec["load"]) is not bool:
                raise BadResult("a malformed or repeated load record")
            out.load = {"ok": rec["load"], **({"error": _error(rec["e"])} if "e" in rec else {})}
        elif "k" in rec:
            if not keys <= {"k", "s", "v", "e", "c"}:
                raise BadResult(f"unknown fields in a step record: {sorted(keys - {'k', 's', 'v', 'e', 'c'})}")
            k = rec["k"]
            if type(k) is not int or not 0 <= k < len(step_types) or k in out.steps:
                raise BadResult(f"a step record with a bad or repeated index {k!r}"[:200])
            status = rec.get("s")
            if status not in STEP_STATUSES[step_types[k]]:
                raise BadResult(f"step {k}: status {status!r} does not fit a {step_types[k]} step"[:200])
            if ("v" in rec) != (status == "ok" and step_types[k] in ("eval", "call", "stdio")):
                raise BadResult(f"step {k}: a value where none belongs, or none where one does")
            step: dict[str, Any] = {"status": status}
            if "v" in rec:
                check_value(rec["v"])
                step["value"] = rec["v"]
            if "e" in rec:
                step["error"] = _error(rec["e"])
            if "c" in rec:
                cover = rec["c"]
                if not isinstance(cover, list) or not all(type(x) is int and 0 < x < 1 << 31 for x in cover):
                    raise BadResult(f"step {k}: malformed coverage")
                step["cover"] = cover
            out.steps[k] = step
        else:
            raise BadResult(f"an unknown record on line {n + 1}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not allowed")


def _error(e: Any) -> dict:
    if not isinstance(e, dict) or not set(e) <= {"type", "msg", "line", "where", "outer_line"}:
        raise BadResult("a malformed error record")
    out: dict[str, Any] = {}
    for key in ("type", "msg", "where"):
        v = e.get(key, "")
        if not isinstance(v, str):
            raise BadResult(f"error field {key} is not a string")
        out[key] = v[:MAX_TEXT]
    for key in ("line", "outer_line"):
        v = e.get(key)
        if v is not None and not (type(v) is int and 0 < v < 1 << 31):
            raise BadResult(f"error field {key} is not a line number")
        if key in e:
            out[key] = v
    return out


def check_value(v: Any) -> None:
    """Raise ``BadResult`` unless ``v`` is a well-formed encoded value (see ``encode``)."""
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        if depth > MAX_WIRE_DEPTH:
            raise BadResult(f"a value nested deeper than {MAX_WIRE_DEPTH}")
        t = type(x)
        if x is None or t in (bool, int, str):
            continue
        if t is float:
            if not math.isfinite(x):
                raise BadResult("a non-finite float outside its tag")
            continue
        if t is list:
            stack.extend((y, depth + 1) for y in x)
            continue
        if t is not dict or len(x) != 1:
            raise BadResult("an unknown value form")
        (tag, body), = x.items()
        if tag not in _TAGS:
            raise BadResult(f"an unknown value tag {tag!r}"[:100])
        if tag in ("$tuple", "$set"):
            if type(body) is not list:
                raise BadResult(f"{tag} needs a list")
            stack.extend((y, depth + 2) for y in body)
        elif tag == "$dict":
            if type(body) is not list or not all(type(p) is list and len(p) == 2 for p in body):
                raise BadResult("$dict needs a list of pairs")
            stack.extend((y, depth + 3) for p in body for y in p)
        elif tag == "$complex":
            if type(body) is not list or len(body) != 2:
                raise BadResult("$complex needs two parts")
            for part in body:
                if not (type(part) in (int, float) or (type(part) is dict and set(part) == {"$float"})):
                    raise BadResult("$complex parts must be numbers")
                stack.append((part, depth + 1))
        elif tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise BadResult("$float holds only nan, inf, -inf")
        elif tag == "$int":
            if type(body) is not str or len(body) > 1_000_000:
                raise BadResult("$int needs a hex string")
            try:
                int(body, 16)
            except ValueError:
                raise BadResult("$int needs a hex string") from None
        elif tag == "$bytes":
            if type(body) is not str:
                raise BadResult("$bytes needs a hex string")
            try:
                bytes.fromhex(body)
            except ValueError:
                raise BadResult("$bytes needs a hex string") from None
        elif type(body) is not str:  # $repr
            raise BadResult("$repr needs a string")


def to_python(v: Any, hashable: bool = False) -> Any:
    """The plain Python value of a checked encoded value (``check_value`` first).

    Inside sets and dict keys (``hashable``) sets become frozensets.
    """
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if t is list:
        return [to_python(x) for x in v]
    (tag, body), = v.items()
    try:
        if tag == "$tuple":
            return tuple(to_python(x, hashable) for x in body)
        if tag == "$set":
            items = (to_python(x, True) for x in body)
            return frozenset(items) if hashable else set(items)
        if tag == "$dict":
            return {to_python(k, True): to_python(x) for k, x in body}
    except TypeError:  # an unhashable set item or dict key
        raise BadResult(f"{tag} holds an unhashable item") from None
    if tag == "$int":
        return int(body, 16)
    if tag == "$float":
        return float(body)
    if tag == "$complex":
        return complex(*(to_python(p) for p in body))
    if tag == "$bytes":
        return bytes.fromhex(body)
    return Opaque(body)


__all__ = ["BadResult", "Opaque", "Records", "check_value", "parse", "to_python"]
