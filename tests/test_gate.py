"""``halt-eval gate`` on constructed runs: the decision cases in ``cases/gate.jsonl``, pairing
errors, bad files, and the Markdown and JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from halt_eval.cli import main
from halt_eval.gate import exit_code, gate
from halt_eval.rules import RULES_VERSION
from halt_eval.runs import Run
from halt_eval.types import ScoredResponse
from halt_runs import scored_row, write_jsonl, write_lmeval_dir

CASES_PATH = Path(__file__).parent / "cases" / "gate.jsonl"
#: Enough resamples for stable decisions on these cases, few enough to keep the suite fast.
RESAMPLES = 2000
CASE_KEYS = {"name", "baseline", "candidate", "expected", "why"}


def _load_cases() -> list[dict]:
    cases = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]
    for case in cases:
        missing = CASE_KEYS - case.keys()
        if missing:
            raise ValueError(f"{CASES_PATH}: case {case.get('name')!r} lacks {sorted(missing)}")
    return cases


def _rows(spec: list[list[int]], task: str = "halt_bio") -> list[dict]:
    """``[[n_correct, n_given, n_desired, count], ...]`` -> rows with ids 0, 1, ... in order."""
    rows = []
    for n_correct, n_given, n_desired, count in spec:
        labels = ["correct"] * n_correct + ["incorrect"] * (n_given - n_correct)
        rows += [scored_row(str(len(rows) + i), labels, task=task, n_desired=n_desired)
                 for i in range(count)]
    return rows


def _gate(tmp_path: Path, baseline, candidate, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "verdict.json"
    code = main(["gate", "--baseline", str(baseline), "--candidate", str(candidate),
                 "--resamples", str(RESAMPLES), "--json", str(out), *extra])
    return code, json.loads(out.read_text())


@pytest.mark.parametrize("case", _load_cases(), ids=lambda c: c["name"])
def test_gate_decides_each_constructed_case(tmp_path, case):
    base = write_jsonl(tmp_path / "base.jsonl", _rows(case["baseline"]))
    cand = write_jsonl(tmp_path / "cand.jsonl", _rows(case["candidate"]))
    extra = ["--max-drop", case["max_drop"]] if "max_drop" in case else []
    code, verdict = _gate(tmp_path, base, cand, *extra)
    statuses = {m["metric"]: m["status"] for m in verdict["tasks"][0]["metrics"]}
    assert code == case["expected"]["exit"], case["why"]
    assert verdict["exit_code"] == code
    for metric, status in case["expected"].get("status", {}).items():
        assert statuses[metric] == status, f"{metric}: {case['why']}"


def test_the_same_seed_gives_the_same_intervals(tmp_path):
    base = write_jsonl(tmp_path / "b.jsonl", _rows([[4, 5, 5, 30], [5, 5, 5, 30]]))
    cand = write_jsonl(tmp_path / "c.jsonl", _rows([[5, 5, 5, 30], [3, 5, 5, 30]]))
    first = _gate(tmp_path, base, cand, "--seed", "7")[1]
    second = _gate(tmp_path, base, cand, "--seed", "7")[1]
    assert first == second


def test_an_lmeval_directory_pairs_with_a_score_jsonl(tmp_path):
    rows = _rows([[4, 5, 5, 20], [5, 5, 5, 20]])
    base = write_jsonl(tmp_path / "base.jsonl", rows)
    cand = write_lmeval_dir(tmp_path / "lm", "org/model-b", {"halt_bio": rows})
    code, verdict = _gate(tmp_path, base, cand)
    assert code == 0
    assert verdict["candidate"]["name"] == "org/model-b"
    assert verdict["tasks"][0]["n_pairs"] == 40


def test_a_document_missing_from_the_candidate_is_exit_2_naming_it(tmp_path, capsys):
    rows = _rows([[5, 5, 5, 10]])
    base = write_jsonl(tmp_path / "base.jsonl", rows)
    cand = write_jsonl(tmp_path / "cand.jsonl", rows[:7])
    code, verdict = _gate(tmp_path, base, cand)
    assert code == 2
    assert verdict["verdict"] == "error"
    err = capsys.readouterr().err
    assert "3 document id(s) only in the baseline" in err and "'7'" in err


def test_a_task_missing_from_the_candidate_is_exit_2_naming_it(tmp_path, capsys):
    base_dir, cand_dir = tmp_path / "base", tmp_path / "cand"
    write_jsonl(base_dir / "bio.jsonl", _rows([[5, 5, 5, 5]]))
    write_jsonl(base_dir / "math.jsonl", _rows([[5, 5, 5, 5]], task="halt_math"))
    write_jsonl(cand_dir / "bio.jsonl", _rows([[5, 5, 5, 5]]))
    code, _ = _gate(tmp_path, base_dir, cand_dir)
    assert code == 2
    assert "task 'halt_math' is only in the baseline" in capsys.readouterr().err


def _as_rules_version(rows: list[dict], version: str | None) -> list[dict]:
    """Rows as written under another rules version (``None``: before versions were recorded)."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("rules_version", "judge_spec")}
        if version is None:
            row["schema_version"] = 1
        else:
            row["rules_version"] = version
        out.append(row)
    return out


def test_runs_scored_under_different_rules_versions_are_exit_2_in_one_line(tmp_path, capsys):
    rows = _rows([[5, 5, 5, 10]])
    base = write_jsonl(tmp_path / "base.jsonl", _as_rules_version(rows, None))
    cand = write_jsonl(tmp_path / "cand.jsonl", rows)
    code, verdict = _gate(tmp_path, base, cand)
    err = capsys.readouterr().err
    assert code == 2 and verdict["verdict"] == "error"
    assert len(err.strip().splitlines()) == 1
    assert "rules versions differ" in err and "version 1" in err and f"under {RULES_VERSION}" in err


def test_a_run_mixing_rules_versions_is_exit_2(tmp_path, capsys):
    rows = _rows([[5, 5, 5, 10]])
    mixed = write_jsonl(tmp_path / "mixed.jsonl", rows[:5] + _as_rules_version(rows[5:], "7"))
    good = write_jsonl(tmp_path / "good.jsonl", rows)
    assert _gate(tmp_path, good, mixed)[0] == 2
    err = capsys.readouterr().err
    assert "the candidate" in err and f"mixes rows scored under rules versions {RULES_VERSION}, 7" in err


def test_the_verdict_records_rules_version_and_judge_specs(tmp_path):
    spec = {"name": "bm25", "version": "1", "options": {"k": 3}}
    rows = [{**r, "judge_spec": spec} for r in _rows([[4, 5, 5, 10]])]
    base = write_jsonl(tmp_path / "base.jsonl", rows)
    md = tmp_path / "gate.md"
    code, verdict = _gate(tmp_path, base, base, "--markdown", str(md))
    assert code == 0 and verdict["rules_version"] == RULES_VERSION
    assert verdict["baseline"]["judge_specs"] == [spec] and verdict["candidate"]["rules_versions"] == [RULES_VERSION]
    assert f'Rules version {RULES_VERSION}. Judges: baseline `bm25@1 ' + '{"options": {"k": 3}}`' in md.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "not valid JSON"),
        ('{"id": "1", "response": "x"}\n', "no 'fragments'"),
        ('{"id": "1", "response": "x", "fragments": [{"verdict": "maybe", "span": [0, 1]}]}\n',
         "fragments[0].verdict must be one of correct, incorrect, unverifiable"),
        ('{"schema_version": 99, "id": "1", "response": "x", "fragments": []}\n', "newer"),
    ],
    ids=["invalid_json", "not_scored_output", "unknown_verdict", "newer_schema"],
)
def test_a_bad_file_is_exit_2_naming_file_and_problem(tmp_path, capsys, content, message):
    base = write_jsonl(tmp_path / "base.jsonl", _rows([[5, 5, 5, 3]]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    code, _ = _gate(tmp_path, base, bad)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "bad.jsonl" in err


def test_a_missing_path_and_a_bad_margin_are_exit_2(tmp_path, capsys):
    base = write_jsonl(tmp_path / "base.jsonl", _rows([[5, 5, 5, 3]]))
    assert _gate(tmp_path, base, tmp_path / "nowhere")[0] == 2
    assert _gate(tmp_path, base, base, "--max-drop", "accuracy=0.1")[0] == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "got 'accuracy=0.1'" in err


def test_markdown_goes_to_the_file_and_is_appended_to_the_step_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base = write_jsonl(tmp_path / "base.jsonl", _rows([[5, 5, 5, 50]]))
    cand = write_jsonl(tmp_path / "cand.jsonl", _rows([[3, 5, 5, 50]]))
    md = tmp_path / "gate.md"
    code, _ = _gate(tmp_path, base, cand, "--markdown", str(md), "--baseline-name", "main")
    assert code == 1
    text = md.read_text()
    assert text.startswith("## halt-eval gate: \u274c regression")
    assert "| halt_bio | correctness | 1.000 | 0.600 | \u22120.400 |" in text
    assert "Baseline `main` vs candidate `cand`" in text
    assert summary.read_text() == "earlier step\n" + text


#: Per document, the correct-fragment count of each run out of 3 (4 stands for an empty answer).
_spec = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=30)


def _run(pairs: list[tuple[int, int]], side: int) -> Run:
    rows = [ScoredResponse.from_dict(
                scored_row(str(i), ["correct"] * min(p[side], 3) + ["incorrect"] * (3 - min(p[side], 3))
                           if p[side] < 4 else [], n_desired=3))
            for i, p in enumerate(pairs)]
    return Run("r", {"halt_bio": rows}, "score", Path("r"))


@settings(max_examples=25, deadline=None)
@given(_spec)
def test_identical_runs_always_pass_with_a_zero_interval(pairs):
    run = _run(pairs, 0)
    results = gate(run, run, resamples=200)
    assert exit_code(results) == 0
    for m in results[0].metrics:
        assert m.status in ("pass", "not gated", "undefined")
        assert m.ci is None or m.ci == (0.0, 0.0)


@settings(max_examples=25, deadline=None)
@given(_spec)
def test_swapping_the_runs_negates_the_change_and_mirrors_the_interval(pairs):
    # A run where every answer is empty has no correctness to compare: the gate refuses it
    # (test_hardening_gate_llm); here both runs give something somewhere.
    assume(any(p[0] < 4 for p in pairs) == any(p[1] < 4 for p in pairs))
    a, b = _run(pairs, 0), _run(pairs, 1)
    forward = {m.metric: m for m in gate(a, b, resamples=200)[0].metrics}
    backward = {m.metric: m for m in gate(b, a, resamples=200)[0].metrics}
    for name, m in forward.items():
        if m.ci is None:
            continue
        assert backward[name].change == pytest.approx(-m.change, abs=1e-12)
        assert backward[name].ci == pytest.approx((-m.ci[1], -m.ci[0]), abs=1e-12)


def test_rows_of_a_repeated_document_pair_by_sample_index(tmp_path, capsys):
    rows = _rows([[5, 5, 5, 3]])
    base = write_jsonl(tmp_path / "base.jsonl", rows + [{**rows[0], "sample": 1}])
    same = write_jsonl(tmp_path / "same.jsonl", [{**rows[0], "sample": 1}] + [{**r, "sample": 0} for r in rows])
    code, verdict = _gate(tmp_path, base, same)
    assert code == 0 and verdict["tasks"][0]["n_pairs"] == 4
    fewer = write_jsonl(tmp_path / "fewer.jsonl", rows)
    assert _gate(tmp_path, base, fewer)[0] == 2
    assert "1 document id(s) only in the baseline ('0' sample 1)" in capsys.readouterr().err


def test_runs_with_four_samples_per_document_pair_by_sample_and_compare_document_means(tmp_path):
    # Three documents of four samples each (lm-eval repeats: 4). Document "a" leaves one sample
    # undefined (nothing given), so the mean over defined samples (5/11) and the mean of the
    # per-document means ((1 + 0 + 0.5) / 3) differ; the gate must compare the latter, as
    # lm-eval's per-document values do, and resample documents, not samples.
    from halt_eval.catalogue import row_values
    from halt_eval.lmeval import per_prompt

    def run(b_labels):
        labels = {"a": [["correct"]] * 3 + [[]], "b": [b_labels] * 4, "c": [["correct", "incorrect"]] * 4}
        return {d: [{**scored_row(d, ls, n_desired=2), "sample": s} for s, ls in enumerate(per)]
                for d, per in labels.items()}

    base, cand = run(["incorrect"]), run(["correct"])
    flat = lambda docs: [r for rows in docs.values() for r in rows]  # noqa: E731
    b = write_jsonl(tmp_path / "base.jsonl", flat(base))
    # the same rows in another order pair by (task, id, sample): no change at all
    same = write_jsonl(tmp_path / "same.jsonl", flat(base)[::-1])
    code, verdict = _gate(tmp_path, b, same)
    task = verdict["tasks"][0]
    assert code == 0 and task["n_pairs"] == 12 and task["n_documents"] == 3
    correctness = {m["metric"]: m for m in task["metrics"]}["correctness"]
    assert correctness["baseline"] == pytest.approx(0.5)  # not 5/11, the per-sample mean
    assert correctness["ci"] == [0.0, 0.0] and correctness["undefined_baseline"] == 0

    # The candidate's document "b" turns correct: 0.5 -> (1 + 1 + 0.5) / 3, from a score JSONL
    # and from lm-eval samples (one line per document, its four rows in filtered_resps and
    # process_results' per-document means at the top).
    c = write_jsonl(tmp_path / "cand.jsonl", flat(cand))
    model_dir = tmp_path / "lmeval" / "model"
    samples = []
    for i, (doc_id, rows) in enumerate(cand.items()):
        top = per_prompt([row_values(ScoredResponse.from_dict(r)) for r in rows])
        doc = {"id": doc_id, "task": "halt_bio", "domain": "bio", "prompt": rows[0]["prompt"],
               "reference": json.dumps(rows[0]["reference"])}
        samples.append({"doc_id": i, "doc": doc, "target": "", "resps": [[r["response"] for r in rows]],
                        "filtered_resps": [json.dumps({k: v for k, v in r.items() if k != "sample"})
                                           for r in rows], **top})
    write_jsonl(model_dir / "samples_halt_bio_2026-11-26T10-00-00.000001.jsonl", samples)
    for candidate in (c, model_dir):
        code, verdict = _gate(tmp_path, b, candidate, "--max-drop", "correctness=0.02")
        task = verdict["tasks"][0]
        metric = {m["metric"]: m for m in task["metrics"]}["correctness"]
        assert code == 0 and task["n_pairs"] == 12 and task["n_documents"] == 3
        assert metric["candidate"] == pytest.approx(2.5 / 3) and metric["change"] == pytest.approx(2.5 / 3 - 0.5)
        # three documents resampled: only "b" changes (by 1), so every resampled change is a
        # multiple of 1/3, never a fraction of twelve samples
        assert all(abs(end * 3 - round(end * 3)) < 1e-9 for end in metric["ci"])
    # a sample missing in the candidate is unpaired
    fewer = write_jsonl(tmp_path / "fewer.jsonl", flat(cand)[:-1])
    assert _gate(tmp_path, b, fewer)[0] == 2
