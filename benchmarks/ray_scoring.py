"""Rows per second of ``halt-eval score`` in one process and on a local Ray instance.

Scores the same answers three ways through the CLI (``halt_eval.cli.main``) and prints one
line per Ray size, with the single process as the peer:

    measure | ours | peer | ratio | n | machine

* ``rows_per_s single process, judge pool of one Ray task``: one process whose judge pool is
  that of a one-CPU Ray task (``--judge-arg workers=K``, ``halt_eval.distributed.WORKERS_PER_CPU``:
  one sympy worker, two sandboxes), to tell the pool size's effect from Ray's.
* ``rows_per_s ray N cpu``: rows per second with ``--ray`` on a local Ray instance started
  here with ``num_cpus=N`` (so N batches at once, each with its own judge pool; see
  ``halt_eval.distributed``). ``peer``: rows per second without ``--ray``. ``ratio``:
  ours / peer (above 1 is faster than one process).
* Each figure is the median of ``--repeat`` rounds; a round runs every kind once (a warm-up
  run, then the timed run), so a drift of the machine's load weighs on all kinds alike. Ray
  starts afresh for each round (``ray.init``, not timed); the warm-up run starts its worker
  processes and their imports. The timed run has fresh scoring options (a ``--marker`` of its
  own), so each process builds its scorer and judge pools inside the timed part, as a
  single-process run does.

The answers (``build_answers``, also used by ``tests/test_ray.py``): GSM8K and MATH-500
reference solutions, and as many again with one number changed (a false claim or a wrong
final answer); MBPP reference programs, and some with an operator swapped or the body cut.

    python benchmarks/ray_scoring.py --math 200 --code 50 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("HALT_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _jsonl(path: Path, limit: int) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if len(rows) == limit:
                    break
    return rows


def _bump_a_number(text: str, rng: random.Random) -> str:
    """One integer of the second half of ``text`` increased by one."""
    nums = [m for m in re.finditer(r"\d+", text) if m.start() >= len(text) // 2] or list(re.finditer(r"\d+", text))
    if not nums:
        return text + " 1 + 1 = 3."
    m = rng.choice(nums)
    return text[:m.start()] + str(int(m.group()) + 1) + text[m.end():]


def math_answers(n: int, seed: int = 0) -> list[dict]:
    """``n`` math rows: half GSM8K, half MATH-500; every third one with a number changed."""
    rng = random.Random(seed)
    n_gsm = n // 2
    rows = []
    for i, r in enumerate(_jsonl(DATA / "math" / "gsm8k" / "test.jsonl", n_gsm)):
        final = r["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
        response = _bump_a_number(r["answer"], rng) if i % 3 == 2 else r["answer"]
        rows.append({"id": f"gsm8k-{i}", "prompt": r["question"], "response": response,
                     "reference": {"answer": final, "solution": r["answer"]}})
    for i, r in enumerate(_jsonl(DATA / "math" / "math-500" / "test.jsonl", n - n_gsm)):
        response = _bump_a_number(r["solution"], rng) if i % 3 == 2 else r["solution"]
        rows.append({"id": f"math500-{i}", "prompt": r["problem"], "response": response,
                     "reference": {"answer": r["answer"], "solution": r["solution"]}})
    return rows


_SWAPS = ((" + ", " - "), (" < ", " > "), (" == ", " != "), (" * ", " + "), (" - ", " + "))


def _break(code: str) -> str:
    """An operator swapped, or else the last third of the program cut."""
    for a, b in _SWAPS:
        if a in code:
            return code.replace(a, b, 1)
    lines = code.splitlines()
    return "\n".join(lines[: max(1, 2 * len(lines) // 3)])


def code_answers(n: int) -> list[dict]:
    """``n`` MBPP test-split rows (task 11 on); every fourth program broken."""
    from halt_eval.domains.code import reference_from

    rows = []
    for r in _jsonl(DATA / "code" / "mbpp" / "mbpp.jsonl", 510):
        if not 11 <= int(r["task_id"]) <= 510:
            continue
        code = r["code"].replace("\r\n", "\n")
        if len(rows) % 4 == 3:
            code = _break(code)
        rows.append({"id": f"mbpp-{r['task_id']}", "prompt": r["text"],
                     "response": f"```python\n{code}\n```", "reference": reference_from("mbpp", r)})
        if len(rows) == n:
            break
    return rows


def build_answers(folder: Path, n_math: int = 200, n_code: int = 50) -> dict[str, Path]:
    """Write ``math.jsonl`` and ``code.jsonl`` into ``folder``; their paths by domain."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for domain, rows in (("math", math_answers(n_math)), ("code", code_answers(n_code))):
        paths[domain] = folder / f"{domain}.jsonl"
        paths[domain].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def _score(paths: dict[str, Path], out: Path, kind: str, run: int) -> float:
    """Seconds to score both files through the CLI. ``run`` goes into a --marker so that
    every run has fresh scoring options (no worker keeps a scorer from an earlier run).
    ``kind``: ``single``, ``matched`` (one process, judge pool of a one-CPU Ray task) or ``ray``."""
    from halt_eval.cli import main
    from halt_eval.distributed import WORKERS_PER_CPU

    start = time.perf_counter()
    for domain, path in paths.items():
        argv = ["score", str(path), "--domain", domain, "-o", str(out / f"{domain}.jsonl"),
                "--marker", f"benchmark run {run} stops here"]
        if kind == "ray":
            argv.append("--ray")
        elif kind == "matched":
            judge = {"math": "sympy", "code": "sandbox"}[domain]
            argv += ["--judge-arg", f"workers={WORKERS_PER_CPU[judge]}"]
        code = main(argv)
        if code != 0:
            raise SystemExit(f"halt-eval score exited {code} on {path}")
    return time.perf_counter() - start


def _ray_init(ray, cpus: int) -> None:
    """A local Ray instance; started again if it times out (a loaded machine)."""
    for attempt in range(3):
        try:
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
            return
        except Exception as e:  # Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt == 2:
                raise
            print(f"ray.init failed ({e}); again in 10 s", file=sys.stderr)
            time.sleep(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--math", type=int, default=200, help="math answers (default 200)")
    p.add_argument("--code", type=int, default=50, help="code answers (default 50)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each kind (default 3)")
    p.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="Ray sizes (default 1 2)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)

    import contextlib
    import io

    import ray

    load = os.getloadavg()
    machine = f"{platform.machine()} {os.cpu_count()} cpu, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = build_answers(tmp / "in", args.math, args.code)
        n = args.math + args.code
        runs = iter(range(10_000))
        quiet = contextlib.redirect_stdout(io.StringIO())  # the summaries
        kinds = ["single", "matched", *args.cpus]  # a number: Ray with that many CPUs
        seconds: dict = {k: [] for k in kinds}
        # Round by round, each kind once, so that the machine's load (shared, and drifting)
        # weighs on every kind alike. Each Ray kind gets a fresh local instance per round.
        for _ in range(args.repeat):
            for kind in kinds:
                on_ray = isinstance(kind, int)
                if on_ray:
                    _ray_init(ray, kind)
                try:
                    with quiet:
                        _score(paths, tmp, "ray" if on_ray else kind, next(runs))  # warm-up
                        seconds[kind].append(_score(paths, tmp, "ray" if on_ray else kind, next(runs)))
                    print(f"{kind}: {seconds[kind][-1]:.1f} s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
                finally:
                    if on_ray:
                        ray.shutdown()
        single = n / statistics.median(seconds["single"])
        figures = [{"measure": "rows_per_s single process", "ours": single, "peer": single},
                   {"measure": "rows_per_s single process, judge pool of one Ray task",
                    "ours": n / statistics.median(seconds["matched"]), "peer": single}]
        for cpus in args.cpus:
            figures.append({"measure": f"rows_per_s ray {cpus} cpu",
                            "ours": n / statistics.median(seconds[cpus]), "peer": single})
    load = os.getloadavg()
    machine += f" -> {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    print("measure | ours | peer | ratio | n | machine")
    for f in figures:
        f.update(ratio=f["ours"] / f["peer"], n=n, machine=machine)
        print(f"{f['measure']} | {f['ours']:.2f} | {f['peer']:.2f} | {f['ratio']:.2f} | {n} | {machine}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
