"""A domain is one record: a toy fifth domain, defined only in its record and its task folder,
runs through `halt-eval score` and through lm-eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from halt_eval.domains import Domain, domain_names, get_domain, register_domain
from halt_eval.catalogue import lmeval_metric_list
from halt_eval.rules import RULES_VERSION

METRICS_PER_ANSWER = [m["metric"] for m in lmeval_metric_list()]
TOY = Path(__file__).resolve().parent / "toy_domain" / "halt_toy"
ANSWERS = [
    {"id": "France", "response": "The capital of France is Paris. Japan's is Osaka."},
    {"id": "Japan", "response": "The capital of Japan is Kyoto."},
    {"id": "Kenya", "response": "Nairobi is the capital of Kenya. Unsure from Here. Kenya: Mombasa."},
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY), os.environ.get("PYTHONPATH", "")])}


def _halt_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "halt_eval.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=600)


def test_builtin_domains_are_records_with_their_sources():
    assert domain_names()[:4] == ["math", "code", "bio", "med"]
    for name in ("math", "code", "bio", "med"):
        record = get_domain(name)
        assert isinstance(record, Domain) and record.name == name
        assert record.sources and record.reference_help
    assert get_domain("med").judge_kwargs == {"coverage": True}
    assert get_domain("math").kind == "dependent" and get_domain("bio").kind == "independent"


def test_an_unknown_domain_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown domain 'chem'.*math, code, bio, med"):
        get_domain("chem")
    with pytest.raises(ValueError, match="is a dict, not a Domain"):
        get_domain("json:__dict__")


def test_a_registered_record_is_found_by_name():
    sys.path.insert(0, str(TOY))
    try:
        import toy_record

        register_domain(toy_record.DOMAIN)
        assert get_domain("capitals") is toy_record.DOMAIN
        assert "capitals" in domain_names()
    finally:
        sys.path.remove(str(TOY))


def test_a_toy_fifth_domain_runs_through_halt_eval_score(tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({**a, "reference": {"capitals": {
        "France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"}}}) + "\n" for a in ANSWERS))
    proc = _halt_eval("score", str(answers), "--domain", "toy_record:DOMAIN", "-o", "scored.jsonl",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "scored.jsonl").read_text().splitlines())}
    assert [f["verdict"] for f in rows["France"]["fragments"]] == ["correct", "incorrect"]
    assert [f["verdict"] for f in rows["Japan"]["fragments"]] == ["incorrect"]
    assert [f["verdict"] for f in rows["Kenya"]["fragments"]] == ["correct"]  # cut at the marker
    assert rows["Kenya"]["abstained"] is True
    assert rows["France"]["rules_version"] == RULES_VERSION
    assert rows["France"]["judge_spec"]["judge"] == {"name": "capitals", "version": "1"}


def test_a_toy_fifth_domain_runs_as_an_lm_eval_task_through_lm_evals_own_channels(tmp_path):
    answers = tmp_path / "replay.jsonl"
    answers.write_text("".join(json.dumps({"task": "halt_toy", "id": a["id"], "response": a["response"]})
                               + "\n" for a in ANSWERS))
    proc = _halt_eval("run", "--model", "halt-replay", "--model_args", f"path={answers}",
                      "--include_path", str(TOY.parent), "--tasks", "halt_toy",
                      "--output_path", "out", "--log_samples", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [results_file] = list((tmp_path / "out").rglob("results_*.json"))
    results = json.loads(results_file.read_text())["results"]["halt_toy"]
    metrics = {k.split(",")[0].removesuffix("_stderr") for k in results if k.endswith(",halt")}
    assert metrics == set(METRICS_PER_ANSWER)
    assert not metrics & {"fragments", "details"}
    assert results["correctness,halt"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    [samples_file] = list((tmp_path / "out").rglob("samples_halt_toy_*.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 3
    for sample in samples:
        [[text]] = sample["filtered_resps"]  # lm-eval logs filtered responses as text
        row = json.loads(text)
        assert row["rules_version"] == RULES_VERSION
        assert row["judge_spec"]["judge"]["name"] == "capitals"
        assert all({"verdict", "reason", "evidence", "span"} <= f.keys() for f in row["fragments"])
    france = next(s for s in samples if s["doc"]["id"] == "France")
    assert json.loads(france["filtered_resps"][0][0])["fragments"][1]["evidence"] == {"country": "Japan",
                                                                         "capital": "Tokyo"}
    from halt_eval.runs import load_run

    run = load_run(tmp_path / "out")
    [rows] = run.tasks.values()
    assert sorted(r.response.id for r in rows) == ["France", "Japan", "Kenya"]
    assert run.rules_versions == {RULES_VERSION} or set(run.rules_versions) == {RULES_VERSION}
