"""Loading scored runs for ``halt-eval report`` and ``halt-eval gate``.

A run is one model (or checkpoint) scored on one or more tasks. Two layouts are read:

- ``halt-eval score`` output: JSONL files of serialized rows (``ScoredResponse.to_dict``),
  one per domain; pass a file or the directory holding them.
- lm-eval output (``--output_path DIR --log_samples``): ``DIR/<model>/results_<time>.json`` and
  ``DIR/<model>/samples_<task>_<time>.jsonl``; pass the model folder or ``DIR`` when it holds a
  single model. The latest timestamp of each task is used. A sample carries its scored row(s)
  in ``filtered_resps`` (what the halt filter returns: one row per answer, several with
  ``repeats``); samples written before that carry ``details`` and ``fragments`` instead, and are
  still read.

Every row becomes a ``ScoredResponse`` through ``ScoredResponse.from_dict``, so rows are checked
on load and errors name ``file:line`` and the field. The metric values lm-eval writes at the top
of a sample (``correctness`` ...) are checked too: each must be a finite number in its range,
NaN only where the row's value is undefined, and equal to what the sample's first row gives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from halt_eval.catalogue import METRICS, Metric
from halt_eval.io import first_text, is_sample, iter_json_lines, parse_sample
from halt_eval.rules import RULES_VERSION
from halt_eval.types import RowError, ScoredResponse

RunSource = Literal["score", "lm-eval"]

_RESULTS_PREFIX = "results_"
_SAMPLES_PREFIX = "samples_"


class RunError(ValueError):
    """A run that cannot be read; the message names the file (and line) at fault."""


@dataclass(frozen=True, slots=True)
class Run:
    """One scored run, as rows grouped by task.

    Attributes:
        name: Display name: the lm-eval ``model_name``, else the file or folder name.
        tasks: Task name to scored rows, in file order; ``(task, id, sample)`` is unique.
        source: ``score`` (``halt-eval score`` JSONL) or ``lm-eval`` (an output directory).
        path: What was passed to ``load_run``.
        files: The files the rows came from.
        skipped: Files that were passed over, with why (no fragments: an lm-eval task that is
            not a halt task, or the unscored answers beside the scored rows).
    """

    name: str
    tasks: Mapping[str, list[ScoredResponse]]
    source: RunSource
    path: Path
    files: tuple[Path, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        """Rows over all tasks."""
        return sum(len(rows) for rows in self.tasks.values())

    def rows(self) -> list[ScoredResponse]:
        """Every row, task by task."""
        return [r for rows in self.tasks.values() for r in rows]

    @property
    def rules_versions(self) -> tuple[str, ...]:
        """The rules versions the rows were scored under, sorted (one for a consistent run)."""
        return tuple(sorted({r.rules_version for r in self.rows()}))

    @property
    def judge_specs(self) -> list[dict[str, Any]]:
        """The distinct judge specs recorded in the rows, in first-seen order (``[]`` for rows
        written before specs were recorded)."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.rows():
            if r.judge_spec:
                seen.setdefault(json.dumps(r.judge_spec, sort_keys=True, default=str), dict(r.judge_spec))
        return list(seen.values())

    def describe_judges(self) -> str:
        """One line naming the judges: each spec as ``name@version`` and its other fields in
        JSON, or, for rows without a spec, the tags on their verdicts."""
        if self.judge_specs:
            return "; ".join(describe_spec(s) for s in self.judge_specs)
        tags = ", ".join(self.verdict_judges) or "none"
        return f"{tags} (no judge spec in the rows)"

    @property
    def verdict_judges(self) -> tuple[str, ...]:
        """The ``name@version`` tags on the verdicts, sorted: who judged, even in old rows."""
        return tuple(sorted({v.judge for r in self.rows() for v in r.verdicts if v.judge}))


def describe_spec(spec: Mapping[str, Any]) -> str:
    """``name@version {"options": ...}``: a judge spec on one line."""
    head = f"{spec.get('name', '?')}@{spec.get('version', '?')}"
    rest = {k: v for k, v in spec.items() if k not in ("name", "version") and v not in ({}, None, "")}
    return head + (" " + json.dumps(rest, sort_keys=True, default=str, ensure_ascii=False) if rest else "")


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run from a score JSONL, a folder of them, or an lm-eval output folder.

    Args:
        path: A ``.jsonl`` file (score output or an lm-eval ``samples_*.jsonl``), a folder of
            score outputs, an lm-eval model folder, or its parent holding one model folder.
        name: Display name; by default the lm-eval model name or the file or folder name.

    Returns:
        The run, with every row checked.

    Raises:
        RunError: The path is missing, holds nothing readable, is ambiguous, or a row is
            malformed (the message names ``file:line`` and the field).
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such file or directory")
    if path.is_file():
        return _load_files(path, [path], name or path.stem, strict=True)
    model_dir = _find_lmeval_dir(path)
    if model_dir is not None:
        return _load_lmeval(path, model_dir, name)
    files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if not files:
        raise RunError(
            f"{path}: no *.jsonl score outputs and no lm-eval results_*.json here or one level down"
        )
    return _load_files(path, files, name or path.name, strict=False)


def _find_lmeval_dir(path: Path) -> Path | None:
    if any(path.glob(f"{_RESULTS_PREFIX}*.json")) or any(path.glob(f"{_SAMPLES_PREFIX}*.jsonl")):
        return path
    models = sorted(
        {p.parent for p in path.glob(f"*/{_RESULTS_PREFIX}*.json")}
        | {p.parent for p in path.glob(f"*/{_SAMPLES_PREFIX}*.jsonl")}
    )
    if len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise RunError(f"{path}: holds several lm-eval model folders ({names}); pass one of them")
    return models[0] if models else None


def _split_timestamp(stem: str, prefix: str) -> tuple[str, str]:
    """``samples_halt_math_2026-11-26T10-00-00.1`` -> ``("halt_math", "2026-11-26T10-00-00.1")``.

    lm-eval's timestamp holds no underscore, so it starts after the last one.
    """
    body = stem[len(prefix):]
    cut = body.rfind("_")
    return (body[:cut], body[cut + 1:]) if cut >= 0 else ("", body)


def _load_lmeval(path: Path, model_dir: Path, name: str | None) -> Run:
    latest: dict[str, tuple[str, Path]] = {}
    for f in model_dir.glob(f"{_SAMPLES_PREFIX}*.jsonl"):
        task, stamp = _split_timestamp(f.stem, _SAMPLES_PREFIX)
        if task and (task not in latest or stamp > latest[task][0]):
            latest[task] = (stamp, f)
    if not latest:
        raise RunError(f"{model_dir}: lm-eval results without samples_*.jsonl; rerun with --log_samples")
    tasks: dict[str, list[ScoredResponse]] = {}
    skipped: list[str] = []
    for task in sorted(latest):
        f = latest[task][1]
        rows, _ = _read_rows(f, default_task=task)
        if rows is None:
            skipped.append(f"{f}: task {task!r} has no fragments (not a halt-eval task)")
            continue
        tasks[task] = rows
    if not tasks:
        raise RunError(f"{model_dir}: no samples file holds halt-eval fragments; " + "; ".join(skipped))
    _check_unique(tasks, model_dir)
    files = tuple(latest[t][1] for t in tasks)
    return Run(name or _lmeval_model_name(model_dir), tasks, "lm-eval", path, files, tuple(skipped))


def _lmeval_model_name(model_dir: Path) -> str:
    results = sorted(model_dir.glob(f"{_RESULTS_PREFIX}*.json"),
                     key=lambda p: _split_timestamp(p.stem, _RESULTS_PREFIX)[1])
    if results:
        try:
            data = json.loads(results[-1].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RunError(f"{results[-1]}: not a readable lm-eval results file ({e})") from e
        model = data.get("model_name") if isinstance(data, Mapping) else None
        if isinstance(model, str) and model:
            return model
    return model_dir.name


def _load_files(path: Path, files: Sequence[Path], name: str, *, strict: bool) -> Run:
    """Rows of score outputs; with ``strict`` off (a folder), files without fragments (the
    answers that were scored, say) are skipped and noted."""
    tasks: dict[str, list[ScoredResponse]] = {}
    source: RunSource = "score"
    skipped: list[str] = []
    used: list[Path] = []
    for f in files:
        default_task = ""
        if f.name.startswith(_SAMPLES_PREFIX):
            default_task = _split_timestamp(f.stem, _SAMPLES_PREFIX)[0]
        rows, from_lmeval = _read_rows(f, default_task=default_task)
        if rows is None:
            if strict:
                raise RunError(f"{f}: rows have no 'fragments'; is this scored output?")
            skipped.append(f"{f}: rows have no 'fragments' (not scored output)")
            continue
        used.append(f)
        if from_lmeval:
            source = "lm-eval"
        for row in rows:
            tasks.setdefault(row.response.task, []).append(row)
    if not tasks:
        raise RunError(f"{path}: no scored rows" + (f" ({'; '.join(skipped)})" if skipped else ""))
    _check_unique(tasks, path)
    return Run(name, tasks, source, path, tuple(used), tuple(skipped))


def _read_rows(f: Path, *, default_task: str) -> tuple[list[ScoredResponse] | None, bool]:
    """Checked rows of one file and whether they were lm-eval samples.

    The rows are ``None`` when the first line holds no scored row (not scored output).
    """
    rows: list[ScoredResponse] = []
    from_lmeval = False
    for where, obj, error, _warning in iter_json_lines(f):
        if error:
            raise RunError(error)
        if not isinstance(obj, Mapping):
            raise RunError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        from_lmeval = "doc_id" in obj and ("filtered_resps" in obj or "details" in obj)
        found = _sample_rows(obj, where) if from_lmeval else ([dict(obj)] if "fragments" in obj else None)
        if found is None:
            if not rows:
                return None, False
            raise RunError(f"{where}: field 'fragments' is missing")
        first = len(rows)
        for row in found:
            task = row.get("task") or default_task or (f"halt_{row['domain']}" if row.get("domain") else "")
            row["task"] = str(task) if isinstance(task, (str, int)) else task
            try:
                scored = ScoredResponse.from_dict(row, where)
            except RowError as e:
                raise RunError(str(e)) from e
            if not scored.response.task:
                raise RunError(f"{where}: neither 'task' nor 'domain' is set")
            rows.append(scored)
        if from_lmeval:
            _check_sample_values(obj, rows[first:], where)
    return rows, from_lmeval


def _check_sample_values(sample: Mapping[str, Any], rows: Sequence[ScoredResponse], where: str) -> None:
    """The metric values lm-eval wrote at the top of a sample (what ``process_results``
    returned for its rows: with several samples per document their per-document mean,
    ``halt_eval.lmeval.per_prompt``) must be possible and, under the current rules, the rows' own.

    Raises:
        RunError: A value is not a number, is infinite, is NaN where the row's value is
            defined, lies outside its range, or differs from the row's; names ``where``.
    """
    from halt_eval.catalogue import row_values
    from halt_eval.lmeval import per_prompt

    expected = per_prompt([row_values(r) for r in rows])
    same_rules = all(r.rules_version == RULES_VERSION for r in rows)
    for metric in METRICS.values():
        if metric.name not in sample:
            continue
        problem = _value_problem(metric, sample[metric.name], expected[metric.name], same_rules)
        if problem:
            raise RunError(f"{where}: lm-eval sample value {metric.name!r} {problem}")


def _value_problem(metric: Metric, value: Any, expected: Any, same_rules: bool) -> str | None:
    """What is wrong with one top-level sample value, or ``None``."""
    if metric.aggregation == "pooled_ratio":  # [n_correct, n_given]
        if (not isinstance(value, list) or len(value) != 2
                or any(_number(v) is None or not math.isfinite(v) or v < 0 for v in value)):
            return f"must be a pair of finite counts [n_correct, n_given], got {_show(value)}"
        if value[0] > value[1]:
            return f"is {_show(value)}: more correct fragments than given ones"
        if same_rules and [float(v) for v in value] != [float(v) for v in expected]:
            return f"is {_show(value)} but the scored row gives {_show(expected)}"
        return None
    number = _number(value)
    if number is None:
        return f"must be a number, got {_show(value)}"
    if math.isinf(number):
        return f"is {_show(value)}; metric values must be finite"
    defined = not (isinstance(expected, float) and math.isnan(expected))
    if math.isnan(number):
        return f"is NaN but the scored row gives {_show(expected)}" if defined and same_rules else None
    low, high = (0.0, 1.0) if metric.direction is not None else (0.0, math.inf)
    if not low <= number <= high:
        bounds = "[0, 1]" if high == 1.0 else ">= 0"
        return f"is {_show(value)}, outside {bounds}"
    if same_rules and (not defined or abs(number - float(expected)) > 1e-9):
        return f"is {_show(value)} but the scored row gives {_show(expected)}"
    return None


def _number(value: Any) -> float | None:
    """A JSON number (or a boolean, as older samples wrote ``abstained``) as a float."""
    return float(value) if isinstance(value, (int, float)) else None


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)[:100]


def _sample_rows(sample: Mapping[str, Any], where: str) -> list[dict[str, Any]] | None:
    """The scored rows of one lm-eval sample, or ``None`` when it holds none.

    Current samples hold each answer's full row in ``filtered_resps`` (read by the one sample
    reader, ``halt_eval.io.parse_sample``: a list of rows as JSON text; with
    ``repeats``, several, numbered by ``sample`` when they are not already). Older samples hold
    the row in ``details`` and ``fragments``, with ``prompt``, ``reference`` and ``response``
    left to ``doc`` and ``resps``. Missing fields are taken from the sample either way.
    """
    found = parse_sample(sample, where).rows if is_sample(sample) else None
    if found:
        rows = [dict(r) for r in found]
        if len(rows) > 1:
            for i, row in enumerate(rows):
                row.setdefault("sample", i)
    elif "details" in sample and "fragments" in sample:
        details = sample["details"]
        if not isinstance(details, Mapping):
            raise RunError(f"{where}: field 'details' must be an object, got {type(details).__name__}")
        rows = [{**details, "fragments": sample["fragments"]}]
    else:
        return None
    return [_complete_from_sample(row, sample, where) for row in rows]


def _complete_from_sample(row: dict[str, Any], sample: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Fill ``id``, ``response``, ``prompt``, ``reference``, ``task`` and ``domain`` from the
    sample's ``doc`` and ``resps`` when the row lacks them; spans index into that response."""
    doc = sample.get("doc") if isinstance(sample.get("doc"), Mapping) else {}
    row.setdefault("id", str(doc.get("id", sample["doc_id"])))
    if "response" not in row:
        text = first_text(sample.get("filtered_resps")) or first_text(sample.get("resps"))
        if text is not None:
            row["response"] = text
    row.setdefault("prompt", str(doc.get("prompt", "")))
    if "reference" not in row:
        row["reference"] = _reference(doc.get("reference"), where)
    for key in ("task", "domain"):
        if not row.get(key) and doc.get(key):
            row[key] = doc[key]
    return row


def _reference(value: Any, where: str) -> dict[str, Any]:
    """A doc's reference: an object, or the JSON text of one (as the halt tasks store it)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RunError(f"{where}: doc.reference is not JSON ({e.msg})") from e
    if not isinstance(value, Mapping):
        raise RunError(f"{where}: doc.reference must be an object, got {type(value).__name__}")
    return dict(value)


def row_key(row: ScoredResponse) -> tuple[str, int]:
    """What pairs a row across runs within a task: its document id and sample index (a row
    without one is sample 0, so a score JSONL pairs with one-answer lm-eval samples)."""
    return row.response.id, row.sample or 0


def _check_unique(tasks: Mapping[str, list[ScoredResponse]], path: Path) -> None:
    for task, rows in tasks.items():
        seen: set[tuple[str, int]] = set()
        for row in rows:
            key = row_key(row)
            if key in seen:
                which = f" sample {row.sample}" if row.sample else ""
                raise RunError(f"{path}: task {task!r} has document id {row.response.id!r}{which} "
                               "twice; samples are paired by (task, id), so ids must be unique")
            seen.add(key)
