"""Reading answers and writing scored rows, with errors that name the record.

Inputs are JSONL: ``halt-eval score`` rows (``id``, ``prompt``, ``response``, ``reference``,
optional ``fragments``) or lm-eval ``samples_*.jsonl`` rows (``doc_id``, ``doc``,
``resps``/``filtered_resps``), told apart per row. A row without ``id`` gets its file's name and
line as id (``answers.jsonl:12``, ``default_id``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from halt_eval.types import Response


class InputError(ValueError):
    """A record that cannot be scored; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class Record:
    """One line of an input file: a response, or the error that stops it being one.

    Attributes:
        where: ``file:line`` of the record.
        response: The parsed response, or ``None`` when ``error`` is set.
        error: Why the line could not become a response.
        warning: Something repaired on the way (invalid UTF-8 replaced).
    """

    where: str
    response: Response | None
    error: str | None = None
    warning: str | None = None


def iter_json_lines(path: str | Path) -> Iterator[tuple[str, Any, str | None, str | None]]:
    """Yield ``(where, obj, error, warning)`` for each non-blank line of a JSONL file.

    A line that is not valid JSON yields ``obj=None`` and an error; invalid UTF-8 is replaced
    with U+FFFD and reported as a warning. Nothing stops the iteration.
    """
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            warning = None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                line = raw.decode("utf-8", errors="replace")
                warning = f"{where}: invalid UTF-8 at byte {e.start}, replaced with U+FFFD"
            if not line.strip():
                continue
            try:
                yield where, json.loads(line), None, warning
            except json.JSONDecodeError as e:
                yield where, None, f"{where}: not valid JSON ({e.msg} at column {e.colno})", warning


def read_responses(path: str | Path, domain: str, *, task: str = "") -> Iterator[Record]:
    """Parse an input file into ``Record``s, one per non-blank line, never raising per line.

    Args:
        path: A ``halt-eval score`` JSONL or an lm-eval ``samples_*.jsonl``.
        domain: The domain name recorded on each response.
        task: Task name to record on each response.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    for where, obj, error, warning in iter_json_lines(path):
        if error:
            yield Record(where, None, error, warning)
            continue
        try:
            responses = rows_to_responses(obj, domain, task=task, where=where)
        except InputError as e:
            yield Record(where, None, str(e), warning)
        else:
            for response in responses:
                yield Record(where, response, None, warning)


def rows_to_responses(obj: Any, domain: str, *, task: str = "", where: str = "") -> list[Response]:
    """One input row as responses: a ``responses`` list gives one per answer, numbered by
    ``sample`` from 0 (several samples for one prompt); otherwise one (``row_to_response``).

    Raises:
        InputError: As ``row_to_response``; or ``responses`` is not a non-empty list of strings.
    """
    if isinstance(obj, Mapping) and "responses" in obj and not is_sample(obj):
        answers = obj["responses"]
        if not (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers)):
            raise InputError(f"{where}: field 'responses' must be a non-empty list of strings")
        if "response" in obj or "sample" in obj:
            raise InputError(f"{where}: give either 'responses' (a list) or 'response' with an "
                             "optional 'sample' index, not both")
        return [row_to_response({**obj, "response": a, "sample": k}, domain, task=task, where=where)
                for k, a in enumerate(answers)]
    return [row_to_response(obj, domain, task=task, where=where)]


def default_id(where: str) -> str:
    """The id of a row that has none: its file's name and line (``answers.jsonl:12``), so
    id-less rows of two input files do not collide (two files of the same name in different
    folders still can: their rows are then named as duplicates)."""
    path, sep, line = where.rpartition(":")
    return f"{Path(path).name}:{line}" if sep and path else where


def row_to_response(obj: Any, domain: str, *, task: str = "", where: str = "") -> Response:
    """Turn one parsed JSON row into a ``Response``.

    Raises:
        InputError: The row lacks what scoring needs; the message names ``where``.
    """
    if not isinstance(obj, Mapping):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if is_sample(obj):
        return _sample_to_response(obj, domain, where)
    text = obj.get("response")
    if not isinstance(text, str):
        raise InputError(f"{where}: field 'response' is missing or not a string (domain {domain!r})")
    reference = obj.get("reference", {})
    if reference is None:
        reference = {}
    if not isinstance(reference, Mapping):
        raise InputError(f"{where}: field 'reference' must be an object, got {type(reference).__name__}")
    fragments = obj.get("fragments")
    if fragments is not None:
        if not isinstance(fragments, list) or not all(isinstance(f, str) for f in fragments):
            raise InputError(f"{where}: field 'fragments' must be a list of strings")
        fragments = tuple(fragments)
    sample = obj.get("sample")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 0):
        raise InputError(f"{where}: field 'sample' must be an integer >= 0, got {sample!r}")
    rid = obj["id"] if "id" in obj else default_id(where)
    return Response(
        id=str(rid),
        domain=domain,  # type: ignore[arg-type]
        prompt=str(obj.get("prompt", "")),
        text=text,
        reference=dict(reference),
        fragments=fragments,
        task=str(obj.get("task", task)),
        sample=sample,
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of an lm-eval ``samples_<task>_<time>.jsonl``, as halt-eval reads it.

    Attributes:
        task: The task (from the doc, else the file name).
        doc_id: lm-eval's document index.
        doc: The document (``id``, ``task``, ``domain``, ``prompt``, ``reference``...).
        texts: The model's generations for the document, in order.
        rows: The scored rows the ``halt`` filter returned (``filtered_resps``, JSON text per
            row), or ``None`` when the sample holds none (an older run, or another task).
    """

    task: str
    doc_id: Any
    doc: Mapping[str, Any]
    texts: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...] | None


SAMPLES_PREFIX = "samples_"


def task_of_samples_file(path: str | Path) -> str:
    """``samples_halt_math_2026-11-26T10-00-00.1.jsonl`` -> ``halt_math`` ('' for other names).

    lm-eval's timestamp holds no underscore, so it starts after the last one.
    """
    stem = Path(path).stem
    if not stem.startswith(SAMPLES_PREFIX):
        return ""
    body = stem[len(SAMPLES_PREFIX):]
    cut = body.rfind("_")
    return body[:cut] if cut >= 0 else ""


def is_sample(obj: Any) -> bool:
    """Whether a parsed JSON line is an lm-eval sample."""
    return isinstance(obj, Mapping) and "doc" in obj and ("resps" in obj or "filtered_resps" in obj)


def parse_sample(obj: Mapping[str, Any], where: str, file_task: str = "") -> Sample:
    """The one reader of lm-eval sample lines (scoring, replay and runs all use it).

    Raises:
        InputError: The line is not an lm-eval sample with a document; names ``where``.
    """
    doc = obj.get("doc")
    if not isinstance(doc, Mapping):
        raise InputError(f"{where}: lm-eval sample has no 'doc' object")
    texts: list[str] = []
    for per_request in obj.get("resps") or ():
        gens = per_request if isinstance(per_request, list) else [per_request]
        texts += [g for g in gens if isinstance(g, str)]
    rows: list[Mapping[str, Any]] = []
    for per_request in obj.get("filtered_resps") or ():
        items = per_request if isinstance(per_request, list) else [per_request]
        for item in items:
            row = _row_text(item)
            if row is not None:
                rows.append(row)
            elif isinstance(item, str) and not texts:
                texts.append(item)
    task = str(doc.get("task") or obj.get("task") or file_task)
    return Sample(task, obj.get("doc_id"), doc, tuple(texts), tuple(rows) if rows else None)


def _row_text(item: Any) -> Mapping[str, Any] | None:
    """A scored row logged as JSON text (or, from other writers, as an object); else ``None``."""
    if isinstance(item, Mapping):
        return item if "fragments" in item else None
    if isinstance(item, str) and item.startswith('{"schema_version"'):
        try:
            row = json.loads(item)
        except json.JSONDecodeError:
            return None
        return row if isinstance(row, Mapping) and "fragments" in row else None
    return None


def _sample_to_response(obj: Mapping[str, Any], domain: str, where: str) -> Response:
    from halt_eval.data import doc_to_prompt, doc_to_reference

    sample = parse_sample(obj, where)
    if not sample.texts:
        raise InputError(f"{where}: lm-eval sample has no text response in resps/filtered_resps")
    doc = sample.doc
    try:
        reference = doc_to_reference(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: cannot build a {domain} reference from the sample's doc: {e}") from e
    # The same id and task as the lm-eval run itself records, so both routes pair in the gate.
    return Response(
        id=str(doc.get("id", obj.get("doc_id", where.rsplit(":", 1)[-1]))),
        domain=domain,  # type: ignore[arg-type]
        prompt=doc_to_prompt(doc),
        text=sample.texts[0],
        reference=reference,
        task=sample.task,
    )


def first_text(value: Any) -> str | None:
    """The first string in a (nested) list of responses, as lm-eval logs them; else ``None``."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value if isinstance(value, str) else None


_SURROGATE = re.compile("[\ud800-\udfff]")


def jsonl_line(row: Mapping[str, Any]) -> tuple[str, bool]:
    """One row as a JSON line that UTF-8 can always carry, and whether anything was escaped.

    A lone surrogate (``"\\ud800"`` is valid JSON, so it reaches us from input) cannot be
    encoded as UTF-8; it is written as its ``\\uXXXX`` escape, which reads back as the same
    string. Everything else stays as it is (``ensure_ascii=False``).
    """
    line = json.dumps(row, ensure_ascii=False)
    if _SURROGATE.search(line) is None:
        return line + "\n", False
    # json.dumps put the surrogate inside a string literal, where an escape means the same
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line) + "\n", True


def write_jsonl_row(fh, row: Mapping[str, Any]) -> bool:
    """Write one row and flush, so a killed run keeps every row already written.

    Returns:
        Whether text UTF-8 cannot carry (a lone surrogate) was escaped (see ``jsonl_line``).
    """
    line, escaped = jsonl_line(row)
    fh.write(line)
    fh.flush()
    return escaped
