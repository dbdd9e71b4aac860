"""`halt-eval score` with several sampled answers per prompt: a `responses` list, or rows that
name their `sample` index; each scored row keeps its index, and runs pair by it."""

from __future__ import annotations

import json

from halt_eval.cli import main
from halt_eval.runs import load_run

REF = {"answer": "5", "solution": "2 + 3 = 5. \\boxed{5}"}
RIGHT = "2 + 3 = 5. The answer is \\boxed{5}."
WRONG = "2 + 3 = 6. The answer is \\boxed{6}."


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_responses_list_is_scored_as_samples_numbered_from_zero(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [{"id": "q", "prompt": "2+3?", "reference": REF,
                                           "responses": [RIGHT, WRONG, RIGHT]}])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["sample"], r["correctness"]) for r in rows] == [("q", 0, 1.0), ("q", 1, 0.0), ("q", 2, 1.0)]
    assert [r.sample for r in load_run(out).tasks["halt_math"]] == [0, 1, 2]


def test_rows_naming_their_sample_pair_and_resume_by_id_and_sample(tmp_path, capsys):
    rows = [{"id": "q", "sample": k, "reference": REF, "response": t} for k, t in enumerate([RIGHT, WRONG])]
    inp = _write(tmp_path / "in.jsonl", rows + [dict(rows[1])])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out)]) == 1  # the repeated (q, 1)
    assert "duplicate id 'q' sample 1, first at" in capsys.readouterr().err
    _write(out, [json.loads(out.read_text().splitlines()[0])])  # as if killed after the first row
    assert main(["score", str(_write(tmp_path / "in2.jsonl", rows)), "--domain", "math", "-o", str(out),
                 "--resume"]) == 0
    assert [json.loads(line)["sample"] for line in out.read_text().splitlines()] == [0, 1]


def test_a_bad_responses_field_or_sample_names_the_line(tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [{"id": "a", "reference": REF, "responses": []},
                                          {"id": "b", "reference": REF, "response": RIGHT, "sample": -1}])
    assert main(["score", str(inp), "--domain", "math", "-o", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err
    assert f"{inp}:1: field 'responses' must be a non-empty list of strings" in err
    assert f"{inp}:2: field 'sample' must be an integer >= 0" in err
