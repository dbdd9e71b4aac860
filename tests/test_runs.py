"""``halt_eval.runs.load_run`` on the layouts written by ``halt-eval score`` and lm-eval."""

from __future__ import annotations

import json
import math

import pytest

from halt_eval.catalogue import row_values
from halt_eval.lmeval import per_prompt
from halt_eval.runs import RunError, load_run
from halt_eval.types import ScoredResponse
from halt_runs import LMEVAL_STAMP, scored_row, write_jsonl, write_lmeval_dir

ROWS = [scored_row("a", ["correct", "incorrect"]), scored_row("b", [])]


def _dicts(rows: list[ScoredResponse]) -> list[dict]:
    return [r.to_dict() for r in rows]


def _write_samples(path, rows_per_doc: list[list[dict]]):
    """An lm-eval samples file as the halt filter now writes it: each document's scored rows in
    ``filtered_resps`` and the catalogue's values beside them."""
    samples = []
    for i, rows in enumerate(rows_per_doc):
        first = rows[0]
        doc = {"id": first["id"], "task": first["task"], "domain": first["domain"],
               "prompt": first["prompt"], "reference": json.dumps(first["reference"])}
        try:  # what process_results writes: the per-prompt mean over the document's samples
            values = per_prompt([row_values(ScoredResponse.from_dict(r)) for r in rows])
        except ValueError:  # a bad row, for the error tests
            values = {}
        samples.append({"doc_id": i, "doc": doc, "target": "", "arguments": [[first["prompt"], {}]],
                        "resps": [[r["response"] for r in rows]], "filtered_resps": rows,
                        "filter": "halt", "metrics": list(values), **values})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def test_an_old_lmeval_sample_row_is_rebuilt_as_the_serialized_row(tmp_path):
    write_lmeval_dir(tmp_path, "org/m", {"halt_bio": ROWS})
    run = load_run(tmp_path / "org__m")
    assert run.source == "lm-eval" and run.name == "org/m"
    assert _dicts(run.tasks["halt_bio"]) == ROWS


def test_a_sample_whose_filtered_resps_hold_rows_is_read_as_those_rows(tmp_path):
    _write_samples(tmp_path / "m" / f"samples_halt_bio_{LMEVAL_STAMP}.jsonl", [[r] for r in ROWS])
    run = load_run(tmp_path)
    assert run.source == "lm-eval" and run.name == "m"
    assert _dicts(run.tasks["halt_bio"]) == ROWS
    assert math.isnan(json.loads((tmp_path / "m" / f"samples_halt_bio_{LMEVAL_STAMP}.jsonl")
                                 .read_text().splitlines()[1])["correctness"])


def test_several_rows_of_one_document_are_its_samples_numbered_in_order(tmp_path):
    repeats = [scored_row("a", ["correct"]), scored_row("a", ["incorrect", "correct"])]
    _write_samples(tmp_path / "m" / f"samples_halt_bio_{LMEVAL_STAMP}.jsonl", [repeats, [ROWS[1]]])
    rows = load_run(tmp_path).tasks["halt_bio"]
    assert [(r.response.id, r.sample, r.n_given) for r in rows] == [("a", 0, 1), ("a", 1, 2), ("b", None, 0)]


def test_a_bad_row_inside_filtered_resps_is_named_by_file_line_and_field(tmp_path):
    bad = {**ROWS[0], "n_desired": "five"}
    path = _write_samples(tmp_path / f"samples_halt_bio_{LMEVAL_STAMP}.jsonl", [[ROWS[1]], [bad]])
    with pytest.raises(RunError, match=r"\.jsonl:2: field 'n_desired' must be int or null"):
        load_run(path)


def test_the_parent_of_a_single_model_folder_is_accepted(tmp_path):
    write_lmeval_dir(tmp_path, "m", {"halt_bio": ROWS})
    assert _dicts(load_run(tmp_path).tasks["halt_bio"]) == ROWS


def test_the_latest_timestamp_of_each_task_wins(tmp_path):
    write_lmeval_dir(tmp_path, "m", {"halt_bio": ROWS[:1]}, stamp="2026-11-25T09-00-00.000001")
    write_lmeval_dir(tmp_path, "m", {"halt_bio": ROWS}, stamp="2026-11-26T09-00-00.000001")
    assert len(load_run(tmp_path).tasks["halt_bio"]) == 2


def test_a_parent_of_two_model_folders_is_ambiguous(tmp_path):
    write_lmeval_dir(tmp_path, "m1", {"halt_bio": ROWS})
    write_lmeval_dir(tmp_path, "m2", {"halt_bio": ROWS})
    with pytest.raises(RunError, match=r"several lm-eval model folders \(m1, m2\)"):
        load_run(tmp_path)


def test_a_task_without_fragments_is_skipped_and_said_so(tmp_path):
    write_lmeval_dir(tmp_path, "m", {"halt_bio": ROWS})
    write_jsonl(tmp_path / "m" / "samples_arc_easy_2026-11-26T10-00-00.000001.jsonl",
                [{"doc_id": 0, "doc": {}, "resps": [["A"]], "acc": 1.0}])
    run = load_run(tmp_path)
    assert list(run.tasks) == ["halt_bio"]
    assert "arc_easy" in run.skipped[0]


def test_score_rows_without_a_task_take_it_from_the_domain(tmp_path):
    rows = [{**r, "task": ""} for r in ROWS]
    run = load_run(write_jsonl(tmp_path / "bio.jsonl", rows))
    assert list(run.tasks) == ["halt_bio"] and run.source == "score"


def test_a_repeated_document_id_names_the_task_and_id(tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(RunError, match="task 'halt_bio' has document id 'a' twice"):
        load_run(path)


def test_nan_for_an_undefined_value_reads_as_null(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text(write_jsonl(tmp_path / "ok.jsonl", ROWS[1:]).read_text().replace('"correctness": null', '"correctness": NaN'))
    assert load_run(path).tasks["halt_bio"][0].correctness is None


def test_a_bad_line_is_named_by_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", ROWS)
    path.write_text(path.read_text() + '{"id": 3, "response": 5, "fragments": []}\n')
    with pytest.raises(RunError, match=r"r\.jsonl:3: field 'response' is missing or not a string"):
        load_run(path)


def test_unscored_answers_beside_scored_rows_are_skipped_in_a_folder(tmp_path):
    write_jsonl(tmp_path / "bio.jsonl", ROWS)
    write_jsonl(tmp_path / "answers.jsonl", [{"id": "a", "response": "text"}])
    run = load_run(tmp_path)
    assert run.n_samples == 2 and "answers.jsonl" in run.skipped[0]
    with pytest.raises(RunError, match="no 'fragments'"):
        load_run(tmp_path / "answers.jsonl")


def test_rows_without_a_rules_version_read_as_version_1_and_the_run_says_so(tmp_path):
    old = [{k: v for k, v in r.items() if k not in ("rules_version", "judge_spec", "schema_version")}
           for r in ROWS]
    run = load_run(write_jsonl(tmp_path / "old.jsonl", old))
    assert run.rules_versions == ("1",)
    assert run.judge_specs == [] and run.describe_judges() == "bm25@1 (no judge spec in the rows)"
