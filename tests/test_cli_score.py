"""`halt-eval score` end to end on the math judge: rows, summary, bad lines, resume."""

from __future__ import annotations

import json

import pytest

from halt_eval.cli import main

GOOD = {"id": "g1", "prompt": "eggs", "response": "16 - 3 - 4 = 9. 9 * 2 = 18. \\boxed{18}",
        "reference": {"answer": "18", "solution": "16 - 3 - 4 = 9\n9 * 2 = 18\n#### 18"}}
WRONG = {"id": "g2", "prompt": "eggs", "response": "16 - 3 - 4 = 9. 9 * 2 = 19. \\boxed{19}",
         "reference": {"answer": "18"}}
ABSTAIN = {"id": "g3", "prompt": "eggs", "response": "16 - 3 - 4 = 9. Unsure from Here. 9 * 2 = 19.",
           "reference": {"answer": "18", "solution": "16 - 3 - 4 = 9\n9 * 2 = 18\n#### 18"}}


def _write(path, rows, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(l + "\n" for l in extra_lines))
    return path


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_rows_and_writes_a_summary(tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [GOOD, WRONG, ABSTAIN])
    out, summary = tmp_path / "deep" / "out.jsonl", tmp_path / "summary.json"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--summary-json", str(summary)]) == 0
    rows = {r["id"]: r for r in _rows(out)}
    assert rows["g1"]["solved"] is True and rows["g1"]["f1"] == 1.0
    assert [f["verdict"] for f in rows["g2"]["fragments"]] == ["correct", "incorrect", "incorrect"]
    assert rows["g3"]["abstained"] is True and rows["g3"]["n_given"] == 1
    assert rows["g3"]["completeness"] == pytest.approx(1 / 3)  # 1 of the reference's 3 steps
    s = json.loads(summary.read_text())
    assert s["n"] == 3 and s["judge"].startswith("sympy@") and s["abstained"] == pytest.approx(1 / 3)
    assert "correctness" in capsys.readouterr().out


def test_a_broken_line_is_named_exit_1_and_the_rest_is_written(tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [GOOD], extra_lines=['{"id": "x", "response": '])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out)]) == 1
    assert [r["id"] for r in _rows(out)] == ["g1"]
    assert f"{inp}:2: not valid JSON" in capsys.readouterr().err


def test_resume_scores_only_the_ids_not_yet_written(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [GOOD, WRONG])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(_write(tmp_path / "first.jsonl", [GOOD])), "--domain", "math", "-o", str(out)]) == 0
    _write(out, [dict(_rows(out)[0], marker="kept from the first run")])
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--resume"]) == 0
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["g1", "g2"] and rows[0]["marker"] == "kept from the first run"


def test_an_unknown_option_value_is_refused_with_the_allowed_values(tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [GOOD])
    assert main(["score", str(inp), "--domain", "chemistry", "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "unknown domain 'chemistry'; known: math, code, bio, med" in capsys.readouterr().err


def test_an_extra_marker_reaches_the_scorer(tmp_path):
    row = dict(ABSTAIN, id="g4", response="16 - 3 - 4 = 9. I stop here now. 9 * 2 = 19.")
    inp = _write(tmp_path / "in.jsonl", [row])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--marker", "I stop here now"]) == 0
    r = _rows(out)[0]
    assert r["abstained"] is True and r["n_given"] == 1 and r["fragments"][0]["verdict"] == "correct"
