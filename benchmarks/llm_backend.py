"""LLM judge backend against one local ``vllm serve``: batched/concurrent vs one at a time, cold vs cached.

Facts are FActScore's human atomic facts (``*.dev.jsonl`` under ``--data``), each checked
against the sentence it came from with the ``verify_claim`` prompt, as the bio judge does.

- ours: all N prompts of a judge call in flight at once (``--concurrency``; the server
  batches them); peer: the same prompts one request at a time, as FActScore/SAFE issue them.
- cached: the same N facts re-scored from the SQLite cache with a fresh client (zero calls);
  peer: the cold concurrent run.

Each measure is the median of ``--repeat`` runs after one warm-up request (excluded). The
server is started by the script (``--vllm-python``, ``--model-dir``) or given (``--base-url``).

Usage:
    python benchmarks/llm_backend.py --data ../shared/data/bio/factscore --limit 64 --repeat 3 \\
        --vllm-python /work/venv-vllm/bin/python --model-dir /work/models/smollm2-135m-instruct
    python benchmarks/llm_backend.py --base-url http://127.0.0.1:8000/v1 --model NAME
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from halt_eval.judges.llm import LLMJudge
from halt_eval.judges.llm_client import LLMOptions, make_client
from halt_eval.types import Fragment, JudgeRequest, Response

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bio" / "factscore"


def load_facts(data: Path, limit: int) -> list[JudgeRequest]:
    """One request per fact: the fact, checked against its own sentence (as the passage)."""
    requests: list[JudgeRequest] = []
    for path in sorted(data.glob("*.dev.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for ann in row.get("annotations") or []:
                for fact in ann.get("human-atomic-facts") or []:
                    resp = Response(f"{path.stem}:{len(requests)}", "bio",
                                    row["input"], fact["text"],
                                    {"topic": row.get("topic", ""), "passages": [ann["text"]]},
                                    (fact["text"],))
                    requests.append(JudgeRequest(resp, (Fragment(0, fact["text"],
                                                                 (0, len(fact["text"])),
                                                                 "independent"),)))
                    if len(requests) >= limit:
                        return requests
    if not requests:
        raise SystemExit(f"{data}: no *.dev.jsonl with human-atomic-facts found")
    return requests


def start_server(py: str, model_dir: str) -> tuple[subprocess.Popen, str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(tempfile.gettempdir()) / f"halt-bench-vllm-{port}.log", "wb")
    cmd = [py, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", "bench", "--dtype", "float32", "--gpu-memory-utilization",
           "0.3", "--max-model-len", "2048", "--enforce-eager", "--host", "127.0.0.1",
           "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"vllm serve exited ({proc.returncode}); see {log.name}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(1)


def timed_run(options: LLMOptions, requests: list[JudgeRequest]) -> tuple[float, dict, list]:
    client = make_client(options)
    judge = LLMJudge("claims", client=client)
    t0 = time.perf_counter()
    judgements = judge.judge(requests)
    elapsed = time.perf_counter() - t0
    stats = client.stats.as_dict()
    client.close()
    return elapsed, stats, [v.label for j in judgements for v in j.verdicts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="directory of FActScore *.dev.jsonl files")
    parser.add_argument("--limit", type=int, default=64, help="facts judged (N)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (median)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (ours)")
    parser.add_argument("--base-url", help="a running OpenAI-compatible server")
    parser.add_argument("--model", help="served model name (default: the server's first)")
    parser.add_argument("--vllm-python", default=os.environ.get("HALT_VLLM_PYTHON"),
                        help="start `vllm serve` with this interpreter (vLLM venv)")
    parser.add_argument("--model-dir", default=os.environ.get("HALT_VLLM_MODEL"),
                        help="model directory for the started server")
    parser.add_argument("--sequential", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the one-at-a-time peer (slow)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    requests = load_facts(args.data, args.limit)
    proc = None
    start_s = None
    if args.base_url:
        url = args.base_url
    elif args.vllm_python and args.model_dir:
        proc, url, start_s = start_server(args.vllm_python, args.model_dir)
        print(f"vllm serve ready in {start_s:.1f} s")
    else:
        parser.error("give --base-url, or --vllm-python and --model-dir (or HALT_VLLM_* env)")
    try:
        base = LLMOptions(backend="openai", base_url=url, model=args.model or
                          ("bench" if proc else None), timeout_s=600)
        timed_run(base, requests[:1])  # warm-up, excluded
        seq, conc, cached = [], [], []
        calls: dict[str, int] = {}
        for _ in range(args.repeat):
            if args.sequential:
                t, st, _labels = timed_run(LLMOptions(**{**base.to_dict(), "max_concurrency": 1}),
                                           requests)
                seq.append(t)
                calls["sequential"] = st["requests"]
            with tempfile.TemporaryDirectory() as tmp:
                cache = str(Path(tmp) / "cache.sqlite")
                opts = LLMOptions(**{**base.to_dict(), "max_concurrency": args.concurrency,
                                     "cache_path": cache})
                t, st, labels_cold = timed_run(opts, requests)
                conc.append(t)
                calls["cold"] = st["requests"]
                t, st, labels_warm = timed_run(opts, requests)
                cached.append(t)
                calls["cached"] = st["requests"]
                assert labels_warm == labels_cold  # noqa: S101 - a broken cache, not a figure
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)

    n = len(requests)
    machine = f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    med = statistics.median
    rows = []
    if seq:
        rows.append(("judge N facts, s", med(conc), med(seq), med(seq) / med(conc)))
    rows.append(("re-score N facts, s", med(cached), med(conc), med(conc) / med(cached)))
    print(f"\n{'measure':<22} | {'ours':>9} | {'peer':>9} | {'ratio':>7} | {'n':>4} | machine")
    for name, ours, peer, ratio in rows:
        print(f"{name:<22} | {ours:9.3f} | {peer:9.3f} | {ratio:6.1f}x | {n:4d} | {machine}")
    print(f"LLM calls: sequential {calls.get('sequential')}, cold {calls['cold']}, "
          f"cached {calls['cached']}; ours = {args.concurrency} in flight (seq peer: 1), "
          f"cached peer = cold concurrent run; median of {args.repeat} after a warm-up")
    if args.json:
        args.json.write_text(json.dumps({
            "n": n, "repeat": args.repeat, "concurrency": args.concurrency,
            "server_start_s": start_s, "sequential_s": seq, "concurrent_s": conc,
            "cached_s": cached, "calls": calls, "machine": machine,
            "batched_vs_sequential": med(seq) / med(conc) if seq else None,
            "cold_vs_cached": med(conc) / med(cached)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
