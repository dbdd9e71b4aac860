"""Size and time to ready of the HTML report on large runs (10,000 and 100,000 samples).

Renders the report for ``--data`` runs (any paths ``halt-eval report`` reads), or, without
``--data``, for synthetic runs built from ``halt_eval.types`` objects: ``--samples`` answers per
run (each size given is measured in turn; default 25, 10,000, then 100,000; 25 samples, one page,
give the floor under the machine's load of the moment) spread over the four
domains, with fragments, verdicts and evidence sized like the judges' (math: a sympy expression;
code: a test log; bio: three retrieved passages of 300 characters from a per-topic pool; med: a
matched statement). The synthetic rows are written as JSONL and timed as ``halt-eval report``
does its work: ``load_s`` (read and check the rows) and ``render_s`` (summaries with bootstrap
intervals, the compressed sample chunks, the template, the write).

Then, in headless Chromium, it loads the page and reads the timings the page records on
``<body>`` once the first page of samples is drawn: ``data-script-ms`` (parse the index, filter,
decompress the chunk(s) the page needs, draw) and ``data-ready-ms`` (since navigation: read and
parse the HTML up to the script, then the script); the chunks follow the script, so the
parser is still reading them then, and ``data-parsed-ms`` (DOMContentLoaded: the whole file
parsed) says when it is done. ``--virtual-time-budget`` makes ``--dump-dom`` wait for that
asynchronous work; the page's timings are real time. The wall time of the whole Chromium process
(start, load, dump the DOM, exit) is printed beside a blank page's, so the report's share can be
read off. Each measure also gives the 1-minute load average of the machine when it was taken.

Each figure is the median of ``--repeat`` runs after one warm-up run that is not counted.
There is no peer column to fill: no other tool writes a fragment-level report (PEERS §16).

Usage:
    python benchmarks/report_size.py [--data RUN ...] [--samples 25 10000 100000] [--runs 1]
        [--limit N] [--repeat 3] [--json OUT] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from halt_eval.reports.render import PAGE_SIZE, render

from halt_eval.runs import Run, load_run
from halt_eval.types import Fragment, Response, ScoredResponse, Verdict

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--virtual-time-budget=60000")
CHROMIUM_TIMEOUT_S = 300
SEED = 0
#: The synthetic rows cycle through the four built-in domains.
BUILT_IN = ("math", "code", "bio", "med")
#: Share of fragments per verdict in the synthetic runs (correct, incorrect, unverifiable).
VERDICT_WEIGHTS = (0.6, 0.25, 0.15)
#: Share of synthetic answers that end with the abstention marker.
ABSTAIN_SHARE = 0.1
PASSAGE_CHARS = 300
PASSAGES_PER_TOPIC = 8
WORDS = ("the", "of", "solution", "value", "born", "river", "function", "returns", "patient",
         "dose", "equals", "therefore", "list", "city", "award", "study", "treatment", "sum")


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + "."


def _evidence(domain: str, rng: random.Random, pool: list[str]) -> dict[str, Any]:
    if domain == "math":
        return {"expression": f"{rng.randint(1, 99)}*x + {rng.randint(1, 99)}",
                "reference": f"{rng.randint(1, 999)}/{rng.randint(1, 99)}", "simplified": "0"}
    if domain == "code":
        return {"test": f"assert f({rng.randint(0, 9)}) == {rng.randint(0, 99)}",
                "log": "\n".join(_sentence(rng, 8) for _ in range(6)), "exit_code": rng.choice((0, 1))}
    if domain == "bio":
        return {"retrieval_source": "reference_passages", "profile": "bio",
                "passages": [{"title": "Topic", "text": p, "bm25": round(rng.uniform(1, 20), 3)}
                             for p in rng.sample(pool, 3)],
                "cosine": round(rng.random(), 3)}
    return {"statement": _sentence(rng, 12), "cosine": round(rng.random(), 3)}


def synthetic_run(name: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` serialized rows over the four domains; the same ``seed`` gives the same prompts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        domain = BUILT_IN[i % len(BUILT_IN)]
        topic = random.Random(f"topic{i}")
        pool = ["".join(_sentence(topic, 10) + " " for _ in range(4))[:PASSAGE_CHARS]
                for _ in range(PASSAGES_PER_TOPIC)]
        sentences = [_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(3, 12))]
        text, frags, verdicts = "", [], []
        for k, s in enumerate(sentences):
            start = len(text)
            text += s + " "
            frags.append(Fragment(k, s, (start, start + len(s)),
                                  "dependent" if domain in ("math", "code") else "independent"))
            label = rng.choices(("correct", "incorrect", "unverifiable"), VERDICT_WEIGHTS)[0]
            verdicts.append(Verdict(label, f"{domain}@1", label, _sentence(rng, 10),
                                    _evidence(domain, rng, pool)))
        marker = None
        if rng.random() < ABSTAIN_SHARE:
            marker = len(text)
            text += "Unsure from Here " + _sentence(rng, 12)
        response = Response(str(i), domain, _sentence(topic, 14), text.rstrip(),  # type: ignore[arg-type]
                            {"answer": _sentence(topic, 6)}, task=f"halt_{domain}")
        rows.append(ScoredResponse(response, tuple(frags), tuple(verdicts), marker is not None,
                                   n_desired=len(frags) + rng.randint(0, 3),
                                   marker_offset=marker).to_dict())
    return rows


def _synthetic_runs(samples: int, runs: int, root: Path) -> list[Run]:
    out = []
    for r in range(runs):
        path = root / f"ckpt-{r}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in synthetic_run(path.stem, samples, SEED + r)))
        out.append(load_run(path))
    return out


def _limit(run: Run, limit: int | None) -> Run:
    if limit is None:
        return run
    tasks = {t: rows[:limit] for t, rows in run.tasks.items()}
    return Run(run.name, tasks, run.source, run.path, run.files, run.skipped)


def _chromium() -> str | None:
    return os.environ.get("HALT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _load(browser: str, page: Path, drawn: int | None = None) -> tuple[float, dict[str, float]]:
    """Wall seconds of a Chromium ``--dump-dom`` run, and the page's own timings (ms).

    Raises:
        RuntimeError: ``drawn`` is given and the page did not draw that many sample cards (so
            a timing of a page that failed to draw is never reported).
    """
    start = time.perf_counter()
    done = subprocess.run([browser, *CHROMIUM_FLAGS, "--dump-dom", page.as_uri()], capture_output=True,
                          text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    wall = time.perf_counter() - start
    body = re.search(r"<body[^>]*>", done.stdout)
    timings = dict(re.findall(r'data-(script|ready|parsed)-ms="([\d.]+)"', body.group(0) if body else ""))
    cards = done.stdout.count('<article class="sample"')
    if drawn is not None and cards != drawn:
        raise RuntimeError(f"the page drew {cards} samples, not {drawn}")
    return wall, {k: float(v) for k, v in timings.items()}


def _loadavg() -> float:
    """The machine's 1-minute load average (as ``uptime`` prints it)."""
    return os.getloadavg()[0]


def _median(values: list[float]) -> float:
    return statistics.median(values[1:]) if len(values) > 1 else values[0]


def measure(runs: list[Run], root: Path, browser: str | None, repeat: int) -> dict[str, Any]:
    """The figures of one report: size, load and render time, and its timings in Chromium."""
    n = sum(r.n_samples for r in runs)
    n_frags = sum(row.n_given for r in runs for rows in r.tasks.values() for row in rows)
    page = root / "report.html"
    render_s = []
    load_before = _loadavg()
    for _ in range(repeat + 1):
        start = time.perf_counter()
        page.write_text(render(runs), encoding="utf-8")
        render_s.append(time.perf_counter() - start)
    figures: dict[str, Any] = {
        "samples": n, "fragments": n_frags, "runs": len(runs),
        "size_mb": page.stat().st_size / 1e6, "render_s": _median(render_s),
        "load_avg": {"size_mb": load_before, "render_s": _loadavg()},
    }
    if browser:
        blank = root / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title><body></body>")
        drawn = min(n, PAGE_SIZE)
        load_before = _loadavg()
        loads = [_load(browser, page, drawn) for _ in range(repeat + 1)]
        load_after = _loadavg()
        blanks = [_load(browser, blank)[0] for _ in range(repeat + 1)]
        figures.update({
            "chromium_wall_s": _median([w for w, _ in loads]),
            "chromium_blank_wall_s": _median(blanks),
            "page_script_ms": _median([t.get("script", float("nan")) for _, t in loads]),
            "page_ready_ms": _median([t.get("ready", float("nan")) for _, t in loads]),
            "page_parsed_ms": _median([t.get("parsed", float("nan")) for _, t in loads]),
        })
        figures["load_avg"].update({"chromium_wall_s": load_after, "chromium_blank_wall_s": _loadavg(),
                                    "page_script_ms": (load_before + load_after) / 2,
                                    "page_ready_ms": (load_before + load_after) / 2,
                                    "page_parsed_ms": (load_before + load_after) / 2})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", metavar="RUN", help="runs to render (default: synthetic)")
    parser.add_argument("--samples", type=int, nargs="+", default=[PAGE_SIZE, 10_000, 100_000],
                        help="synthetic samples per run, one report per size (default 25 10000 100000: "
                             "25, one page, is the floor under the machine's load of the moment)")
    parser.add_argument("--runs", type=int, default=1, help="synthetic runs (default 1)")
    parser.add_argument("--limit", type=int, help="keep the first N rows of each task")
    parser.add_argument("--repeat", type=int, default=3, help="counted repeats after one warm-up (default 3)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True,
                        help="time the page in headless Chromium (default on)")
    args = parser.parse_args(argv)
    browser = _chromium() if args.browser else None
    if args.browser and browser is None:
        print("chromium not found: apt-get install -y chromium (or --no-browser)", file=sys.stderr)
        return 2

    machine = f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} {platform.python_version()}"
    units = {"size_mb": "MB", "load_s": "s", "render_s": "s", "chromium_wall_s": "s",
             "chromium_blank_wall_s": "s", "page_script_ms": "ms", "page_ready_ms": "ms",
             "page_parsed_ms": "ms"}
    print(f"measure | ours | peer | ratio | n | machine, load average   (median of {args.repeat} after 1 warm-up)")
    results = []
    for size in ([None] if args.data else args.samples):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            load_avg = _loadavg()
            start = time.perf_counter()
            runs = [load_run(p) for p in args.data] if args.data else _synthetic_runs(size, args.runs, root)
            load_s = time.perf_counter() - start  # synthetic: includes building and writing the rows
            runs = [_limit(r, args.limit) for r in runs]
            figures = measure(runs, root, browser, args.repeat)
            figures["load_s" if args.data else "build_and_load_s"] = load_s
            figures["load_avg"]["load_s" if args.data else "build_and_load_s"] = load_avg
        results.append(figures)
        for key, unit in {**units, "build_and_load_s": "s"}.items():
            if key in figures:
                print(f"{key} | {figures[key]:.2f} {unit} | n/a | n/a | {figures['samples']} samples, "
                      f"{figures['fragments']} fragments | {machine}, load {figures['load_avg'][key]:.1f}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps({"reports": results, "machine": machine, "repeat": args.repeat},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
