"""``halt-eval report``: one self-contained HTML file for one or more scored runs.

The page holds a summary table per task and run (correctness, completeness and F1 with 95%
bootstrap intervals, abstention rate, samples), a correctness-versus-completeness plot per domain
with one point per run, and every sample with its fragments coloured by verdict, each opening its
evidence. The table and plots are static HTML and SVG; the samples travel inside the page as a
small JSON index plus gzip-compressed chunks of JSON, and a small inline script draws them a page
at a time, decompressing a chunk only when a page needs it, so the page is ready in about the same
time for 100,000 samples as for 100. No network, no CDN. Renders from serialized rows alone: no judge is imported.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from halt_eval.catalogue import METRICS, summarize
from halt_eval.runs import Run, RunError, load_run
from halt_eval.types import KINDS, LABELS, ScoredResponse

TEMPLATE_DIR = Path(__file__).parent / "templates"
#: Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
RUN_COLOURS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)
#: Plot geometry in SVG user units (pixels at 100% zoom).
PLOT_WIDTH_PX, PLOT_HEIGHT_PX, PLOT_MARGIN_PX = 380, 320, 48
#: Gap between the axes and the value 0, so a point at (0, 0) sits clear of the axes and their
#: labels (at least the first run's point radius plus its outline).
PLOT_INSET_PX = 12
#: Point radius of the first run; each later run is drawn smaller and on top, so points that
#: coincide show as concentric rings instead of hiding each other.
POINT_RADIUS_PX, POINT_RADIUS_STEP_PX, POINT_RADIUS_MIN_PX = 9.0, 2.5, 3.0
#: Samples drawn per page by the inline script.
PAGE_SIZE = 25
#: Samples per compressed chunk of the page's data: the page decompresses one chunk (tens of
#: milliseconds) before it is ready and another whenever a page needs samples from it.
CHUNK_SIZE = 200
#: gzip level of the chunks (zlib's default). On 2,000 samples of the synthetic rows of
#: ``benchmarks/report_size.py`` (7.1 MB of JSON), level 6 writes 1.16 MB in 2.1 s, level 3
#: 1.38 MB in 0.55 s and level 9 1.13 MB in 5.2 s (on a loaded machine).
CHUNK_GZIP_LEVEL = 6
#: Filter flags of a sample in the page's index: a fragment of each verdict, no fragment,
#: abstained, not judged (error), one of several answers to its prompt (has a sample index).
FLAG_CORRECT, FLAG_INCORRECT, FLAG_UNVERIFIABLE = 1, 2, 4
FLAG_EMPTY, FLAG_ABSTAINED, FLAG_ERROR, FLAG_SAMPLED = 8, 16, 32, 64
#: Evidence strings at least this long that occur more than once (a passage retrieved for
#: several facts, a test log shared by a program's lines) are stored once in a string table.
SHARED_STRING_MIN_CHARS = 48
#: Prefix of a string-table reference inside evidence; a real string that starts with it is
#: escaped by doubling the prefix.
_REF = "\u0001"
#: Catalogue metrics in the summary table, with their intervals; the plot's axes.
TABLE_METRICS: tuple[str, ...] = ("correctness", "completeness", "f1", "micro_correctness")
PLOT_X, PLOT_Y = "completeness", "correctness"


@dataclass(frozen=True, slots=True)
class PlotPoint:
    """One run on a domain's plot, in SVG coordinates, with its 95% intervals as whiskers."""

    run: str
    colour: str
    x: float
    y: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    radius: float
    title: str


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci_text(ci: Sequence[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _display_names(runs: Sequence[Run]) -> list[str]:
    """Run names, with each name shared by several runs replaced by its path."""
    names = [r.name for r in runs]
    return [str(r.path) if names.count(r.name) > 1 else r.name for r in runs]


def _domain(task: str, rows: Sequence[ScoredResponse]) -> str:
    return (rows[0].response.domain if rows else "") or task


def _scale(value: float, axis: str) -> float:
    """Map a metric in [0, 1] to SVG x (``axis="x"``) or y (drawn upwards)."""
    if axis == "x":
        return PLOT_MARGIN_PX + PLOT_INSET_PX + value * (PLOT_WIDTH_PX - 1.5 * PLOT_MARGIN_PX - PLOT_INSET_PX)
    return (PLOT_HEIGHT_PX - PLOT_MARGIN_PX - PLOT_INSET_PX
            - value * (PLOT_HEIGHT_PX - 1.5 * PLOT_MARGIN_PX - PLOT_INSET_PX))


def _plots(runs: Sequence[Run], names: Sequence[str]) -> list[dict[str, Any]]:
    """One plot per domain: each run's rows of that domain pooled into one point."""
    by_domain: dict[str, list[list[ScoredResponse]]] = {}
    for i, run in enumerate(runs):
        for task, rows in run.tasks.items():
            by_domain.setdefault(_domain(task, rows), [[] for _ in runs])[i].extend(rows)
    plots = []
    for domain in sorted(by_domain):
        points, missing = [], []
        for i, rows in enumerate(by_domain[domain]):
            if not rows:
                continue
            s = summarize(rows)
            corr, comp = s[PLOT_Y], s[PLOT_X]
            if corr is None or comp is None:
                missing.append(names[i])
                continue
            cci = s[f"{PLOT_Y}_ci"] or [corr, corr]
            pci = s[f"{PLOT_X}_ci"] or [comp, comp]
            points.append(PlotPoint(
                run=names[i], colour=RUN_COLOURS[i % len(RUN_COLOURS)],
                x=_scale(comp, "x"), y=_scale(corr, "y"),
                x_lo=_scale(pci[0], "x"), x_hi=_scale(pci[1], "x"),
                y_lo=_scale(cci[0], "y"), y_hi=_scale(cci[1], "y"),
                radius=max(POINT_RADIUS_MIN_PX, POINT_RADIUS_PX - POINT_RADIUS_STEP_PX * i),
                title=(f"{names[i]} ({domain}, n={s['n']}): {PLOT_Y} {corr:.3f} "
                       f"{_ci_text(cci)}, {PLOT_X} {comp:.3f} {_ci_text(pci)}"),
            ))
        plots.append({"domain": domain, "points": points, "missing": missing})
    return plots


def _summary_rows(runs: Sequence[Run], names: Sequence[str]) -> list[dict[str, Any]]:
    tasks = sorted({t for r in runs for t in r.tasks})
    out = []
    for task in tasks:
        for i, run in enumerate(runs):
            if task not in run.tasks:
                continue
            s = summarize(run.tasks[task])
            total = sum(s["verdicts"].values())
            out.append({
                "task": task, "run": names[i], "run_index": i,
                "colour": RUN_COLOURS[i % len(RUN_COLOURS)], "n": s["n"],
                "cells": [(_fmt(s[m]), _ci_text(s.get(f"{m}_ci"))) for m in TABLE_METRICS],
                "abstention": _fmt(s[METRICS["abstained"].summary_name]),
                "errors": s["errors"],
                "verdicts": [(label, s["verdicts"].get(label, 0),
                              100.0 * s["verdicts"].get(label, 0) / total if total else 0.0)
                             for label in LABELS],
            })
    return out


def _sample_data(runs: Sequence[Run], names: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The samples as the inline script reads them: a small index, and the samples themselves in
    compressed chunks.

    The index (plain JSON) holds what the filters need for every sample: its document (task and
    id), run and flags (``FLAG_*``). The chunks hold ``CHUNK_SIZE`` consecutive samples each, with
    the prompts and references of their documents and their own string table, as gzip-compressed
    JSON in base64 (``_chunk``); the page decompresses a chunk the first time one of its samples
    is drawn, so the page is ready after parsing the index and one chunk, whatever the run's size.

    Prompts and references are stored once per ``(task, id)`` and chunk and shared by the runs; a
    fragment's text is ``null`` when it equals the answer text at its span; repeated long evidence
    strings are stored once per chunk (``_SharedStrings``).
    """
    tasks = sorted({t for r in runs for t in r.tasks})
    docs: dict[tuple[str, str], int] = {}
    doc_rows: list[list[Any]] = []
    samples: list[tuple[int, int, ScoredResponse]] = []
    for ri, run in enumerate(runs):
        for task, rows in run.tasks.items():
            for row in rows:
                r = row.response
                key = (task, r.id)
                if key not in docs:
                    docs[key] = len(doc_rows)
                    doc_rows.append([tasks.index(task), r.id, r.prompt, dict(r.reference), r.domain])
                samples.append((docs[key], ri, row))
    # Same document across runs side by side, documents in the order first seen; a run's several
    # answers to one prompt by sample index.
    samples.sort(key=lambda s: (doc_rows[s[0]][0], s[0], s[1], s[2].sample or 0))
    index = {
        "runs": list(names),
        "colours": [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(runs))],
        "tasks": tasks,
        "labels": list(LABELS),
        "kinds": list(KINDS),
        "pageSize": PAGE_SIZE,
        "chunkSize": CHUNK_SIZE,
        "flags": {"correct": FLAG_CORRECT, "incorrect": FLAG_INCORRECT, "unverifiable": FLAG_UNVERIFIABLE,
                  "empty": FLAG_EMPTY, "abstained": FLAG_ABSTAINED, "error": FLAG_ERROR,
                  "sampled": FLAG_SAMPLED},
        "docTask": [row[0] for row in doc_rows],
        "docId": [row[1] for row in doc_rows],
        "sampleDoc": [d for d, _r, _row in samples],
        "sampleRun": [ri for _d, ri, _row in samples],
        "sampleFlags": [_flags(row) for _d, _r, row in samples],
    }
    chunks = []
    for start in range(0, len(samples), CHUNK_SIZE):
        part = samples[start:start + CHUNK_SIZE]
        table = _SharedStrings([row for _d, _r, row in part])
        chunks.append(_chunk({
            "docs": {str(d): doc_rows[d][2:] for d in dict.fromkeys(d for d, _r, _row in part)},
            "samples": [_sample(d, ri, row, table) for d, ri, row in part],
            "strings": table.strings,
        }))
    return index, chunks


def _flags(row: ScoredResponse) -> int:
    """The filter flags of a sample (``FLAG_*``)."""
    flags = 0
    for v in row.verdicts:
        flags |= (FLAG_CORRECT, FLAG_INCORRECT, FLAG_UNVERIFIABLE)[LABELS.index(v.label)]
    if not row.fragments:
        flags |= FLAG_EMPTY
    if row.abstained:
        flags |= FLAG_ABSTAINED
    if row.error:
        flags |= FLAG_ERROR
    if row.sample is not None:
        flags |= FLAG_SAMPLED
    return flags


def _chunk(data: Any) -> str:
    """A chunk of samples as the page stores it: JSON, gzip-compressed, in base64 (whose
    alphabet has no ``<``, ``>`` or ``&``, so model text cannot close the element)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (valid JSON, not UTF-8): escape everything
        raw = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    return base64.b64encode(gzip.compress(raw, compresslevel=CHUNK_GZIP_LEVEL, mtime=0)).decode("ascii")


def read_chunk(encoded: str) -> dict[str, Any]:
    """The samples of one chunk as ``_chunk`` stored them (the inverse, for tests and tools)."""
    return json.loads(gzip.decompress(base64.b64decode(encoded)).decode("utf-8"))


class _SharedStrings:
    """Stores each long evidence string that occurs more than once in a table, once.

    ``pack`` replaces such a string by ``_REF`` and its table index, and escapes a string that
    starts with ``_REF`` by doubling it; the page's ``unpack`` reverses both.
    """

    def __init__(self, rows: Sequence[ScoredResponse]) -> None:
        counts: dict[str, int] = {}
        for row in rows:
            for evidence in _evidences(row):
                for text in _strings(evidence, []):
                    if len(text) >= SHARED_STRING_MIN_CHARS:
                        counts[text] = counts.get(text, 0) + 1
        self.strings = [t for t, c in counts.items() if c > 1]
        self._index = {t: i for i, t in enumerate(self.strings)}

    def pack(self, value: Any) -> Any:
        """``value`` with shared strings replaced by references and non-finite numbers by
        ``None`` (JSON has no NaN)."""
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, str):
            if value in self._index:
                return f"{_REF}{self._index[value]}"
            return _REF + value if value.startswith(_REF) else value
        if isinstance(value, dict):
            return {k: self.pack(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.pack(v) for v in value]
        return value


def _evidences(row: ScoredResponse) -> list[Any]:
    return [v.evidence for v in (*row.verdicts, *(row.coverage or ()))] + [row.evidence]


def _strings(value: Any, out: list[str]) -> list[str]:
    """Append every string inside a JSON-like value (dicts, lists, tuples) to ``out``."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)
    return out


def _verdict(v, table: _SharedStrings) -> list[Any]:
    return [LABELS.index(v.label), v.reason, v.explanation, table.pack(dict(v.evidence)), v.judge]


#: The dependent rule's explanation as ``halt_eval.rules.apply_dependent_rule`` words it, with the
#: first incorrect fragment's 0-based index.
_FIRST_ERROR_TEXT = re.compile(r"\(#(\d+)\)")


def _numbered(v) -> tuple[str, dict[str, Any]]:
    """A verdict's explanation and evidence with fragment numbers shown 1-based, as the page lists
    fragments: the dependent rule records the first error's 0-based index (``first_error``), and
    the page shows it as ``#index+1`` in the explanation and the evidence alike."""
    evidence = dict(v.evidence)
    first = evidence.get("first_error")
    if v.reason != "after_first_error" or not isinstance(first, int) or isinstance(first, bool):
        return v.explanation, evidence
    evidence["first_error"] = f"#{first + 1}"
    explanation = _FIRST_ERROR_TEXT.sub(lambda m: f"(#{first + 1})" if int(m.group(1)) == first
                                        else m.group(0), v.explanation)
    return explanation, evidence


def _pack_numbered(v, table: _SharedStrings) -> tuple[str, Any]:
    explanation, evidence = _numbered(v)
    return explanation, table.pack(evidence)


def _sample(doc: int, run_index: int, row: ScoredResponse, table: _SharedStrings) -> dict[str, Any]:
    text = row.response.text
    out: dict[str, Any] = {
        "d": doc, "r": run_index, "t": text,
        "m": row.marker_offset, "a": row.abstained,
        "c": row.correctness, "p": row.completeness, "f": row.f1,
        "fr": [
            [f.span[0], f.span[1], LABELS.index(v.label), KINDS.index(f.kind),
             None if text[f.span[0]:f.span[1]] == f.text else f.text,
             v.reason, *_pack_numbered(v, table), v.judge]
            for f, v in zip(row.fragments, row.verdicts)
        ],
    }
    if row.error:
        out["e"] = row.error
    if row.solved is not None:
        out["s"] = row.solved
    if row.n_desired is not None:
        out["nd"] = row.n_desired
    if row.sample is not None:
        out["k"] = row.sample
    if row.evidence:
        out["ev"] = table.pack(dict(row.evidence))
    skipped = row.evidence.get("skipped") if isinstance(row.evidence, dict) else None
    if isinstance(skipped, list):  # what the splitter left out, and why (bio/med splitter)
        out["sk"] = [[k["span"][0], k["span"][1], str(k.get("reason", ""))] for k in skipped
                     if isinstance(k, dict) and isinstance(k.get("span"), list) and len(k["span"]) == 2]
    if row.coverage:
        out["cov"] = [_verdict(v, table) for v in row.coverage]
    return out


def _script_json(data: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survive,
    so model text cannot close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return Markup(text)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render(runs: Sequence[Run], *, title: str = "halt-eval report") -> str:
    """Render runs to one self-contained HTML page.

    Args:
        runs: One or more loaded runs; with several, each task and domain compares them.
        title: Page title.

    Returns:
        The HTML text.

    Raises:
        ValueError: ``runs`` is empty.
    """
    if not runs:
        raise ValueError("render() needs at least one run")
    names = _display_names(runs)
    index, chunks = _sample_data(runs, names)
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title,
        runs=[{"name": n, "colour": RUN_COLOURS[i % len(RUN_COLOURS)], "source": r.source,
               "path": str(r.path), "n": r.n_samples, "tasks": sorted(r.tasks),
               "rules": ", ".join(r.rules_versions), "judges": r.describe_judges()}
              for i, (n, r) in enumerate(zip(names, runs))],
        summary=_summary_rows(runs, names),
        plots=_plots(runs, names),
        plot={"w": PLOT_WIDTH_PX, "h": PLOT_HEIGHT_PX, "m": PLOT_MARGIN_PX,
              "x0": _scale(0, "x") - PLOT_INSET_PX, "y0": _scale(0, "y") + PLOT_INSET_PX,
              "ticks": [(t / 5, _scale(t / 5, "x"), _scale(t / 5, "y")) for t in range(6)]},
        labels=LABELS,
        index=_script_json(index),
        chunks=chunks,
    )


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``halt-eval report`` options."""
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="a halt-eval score JSONL or folder of them, or an lm-eval output folder "
                             "(the model folder, or its parent holding one model)")
    parser.add_argument("--baseline", metavar="RUN",
                        help="with --candidate instead of RUNs: the diff report of two paired runs "
                             "(the gate's per-task changes, then documents by F1 change)")
    parser.add_argument("--candidate", metavar="RUN", help="the candidate run of the diff report")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="HTML file to write (default report.html)")
    parser.add_argument("--name", action="append", default=None, metavar="NAME",
                        help="display name of each run, in order (repeat once per RUN)")
    parser.add_argument("--title", default="halt-eval report", help="page title")


def run(args: argparse.Namespace) -> int:
    """Load the runs, write the report (or the diff report), and print where; 2 on unreadable
    input or unpaired runs."""
    if args.baseline is not None or args.candidate is not None:
        return _run_diff(args)
    if not args.runs:
        print("halt-eval report: error: give one or more RUNs, or --baseline and --candidate",
              file=sys.stderr)
        return 2
    if args.name is not None and len(args.name) != len(args.runs):
        print(f"halt-eval report: error: --name given {len(args.name)} time(s) for "
              f"{len(args.runs)} run(s)", file=sys.stderr)
        return 2
    names = args.name or [None] * len(args.runs)
    try:
        runs = [load_run(path, name) for path, name in zip(args.runs, names)]
    except RunError as e:
        print(f"halt-eval report: error: {e}", file=sys.stderr)
        return 2
    for r in runs:
        for note in r.skipped:
            print(f"halt-eval report: skipped {note}", file=sys.stderr)
    data = _write_page(args.output, render(runs, title=args.title))
    if data is None:
        return 2
    n = sum(r.n_samples for r in runs)
    print(f"wrote {args.output} ({len(data) / 1e6:.1f} MB, {len(runs)} run(s), {n:,} samples)")
    return 0


def _write_page(path: Path, html: str) -> bytes | None:
    """Write a page; a lone surrogate (in an id or title) goes out as a \\uXXXX escape with a
    warning. Returns the bytes written, or ``None`` after a one-line error (exit 2)."""
    try:
        data = html.encode("utf-8")
    except UnicodeEncodeError:
        data = html.encode("utf-8", errors="backslashreplace")
        print("halt-eval report: warning: text that UTF-8 cannot carry (a lone surrogate) written "
              "as a \\uXXXX escape", file=sys.stderr)
    try:
        path.write_bytes(data)
    except OSError as e:
        print(f"halt-eval report: error: cannot write {path}: {e.strerror or e}", file=sys.stderr)
        return None
    return data


def _run_diff(args: argparse.Namespace) -> int:
    from halt_eval.gate import GateError
    from halt_eval.reports.diff import render_diff
    if args.baseline is None or args.candidate is None or args.runs:
        print("halt-eval report: error: the diff report takes --baseline and --candidate and no RUN",
              file=sys.stderr)
        return 2
    names = args.name or [None, None]
    if len(names) != 2:
        print("halt-eval report: error: --name given other than twice for --baseline and --candidate",
              file=sys.stderr)
        return 2
    try:
        baseline, candidate = load_run(args.baseline, names[0]), load_run(args.candidate, names[1])
        title = args.title if args.title != "halt-eval report" else "halt-eval diff"
        html = render_diff(baseline, candidate, title=title)
    except (RunError, GateError) as e:
        print(f"halt-eval report: error: {e}", file=sys.stderr)
        return 2
    data = _write_page(args.output, html)
    if data is None:
        return 2
    print(f"wrote {args.output} ({len(data) / 1e6:.1f} MB, diff of "
          f"{baseline.n_samples:,} paired samples)")
    return 0
