"""Current-checkpoint features of the lm-eval glue and the score CLI: reasoning spans,
--predict_only, --num_fewshot, several samples per prompt, chat templates with halt-replay,
judge settings from --metadata."""

from __future__ import annotations

import json

import pytest

from halt_eval.cli import main
from halt_eval.reasoning import split_reasoning

THOUGHTS = "<think>Maybe 16 - 3 = 14? No: 16 - 3 - 4 = 9. Then 9 * 2 = 19?</think>"
GOOD = {"id": "g1", "prompt": "eggs",
        "response": THOUGHTS + "\n16 - 3 - 4 = 9. 9 * 2 = 18. \\boxed{18}",
        "reference": {"answer": "18", "solution": "16 - 3 - 4 = 9\n9 * 2 = 18\n#### 18"}}


def _score(tmp_path, rows, *flags):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), *flags]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


# ---------------------------------------------------------------- reasoning spans

def test_score_judges_only_the_answer_after_the_think_block_and_records_its_length(tmp_path):
    [row] = _score(tmp_path, [GOOD])
    assert row["solved"] is True and row["n_given"] == 3 and row["correctness"] == 1.0
    assert all("Maybe" not in f["text"] for f in row["fragments"])
    assert row["evidence"]["reasoning"] == {"mode": "answer", "chars": len(THOUGHTS),
                                            "closed": True, "span": [0, len(THOUGHTS)]}


def test_score_can_judge_the_reasoning_or_keep_everything(tmp_path):
    [inside] = _score(tmp_path, [GOOD], "--reasoning", "reasoning")
    assert inside["evidence"]["reasoning"]["mode"] == "reasoning"
    assert any("19" in f["text"] and f["verdict"] == "incorrect" for f in inside["fragments"])
    assert all("boxed" not in f["text"] for f in inside["fragments"])
    [kept] = _score(tmp_path, [GOOD], "--reasoning", "keep")
    assert "reasoning" not in kept["evidence"] and kept["n_given"] > 3


def test_score_takes_other_delimiters(tmp_path):
    row = {**GOOD, "response": GOOD["response"].replace("<think>", "[[R]]").replace("</think>", "[[/R]]")}
    [plain] = _score(tmp_path, [row], "--reasoning", "keep")
    [cut] = _score(tmp_path, [row], "--reasoning-delimiters", "[[R]],[[/R]]")
    assert cut["solved"] is True and cut["n_given"] == 3 and cut["evidence"]["reasoning"]["chars"] > 0
    assert plain["n_given"] > 3


def test_an_unclosed_span_leaves_no_answer_and_an_opened_by_the_template_span_is_found():
    open_only = split_reasoning("<think>still thinking")
    assert open_only.answer == "" and not open_only.closed and open_only.reasoning == "still thinking"
    template_opened = split_reasoning("thoughts</think> The answer.")
    assert template_opened.answer == " The answer." and template_opened.span == (0, 16)
    none = split_reasoning("no span here")
    assert none.answer == "no span here" and none.span is None and none.chars == 0


def test_a_truncated_think_block_abstains_rather_than_judging_thoughts(tmp_path):
    [row] = _score(tmp_path, [{**GOOD, "response": "<think>16 - 3 - 4 = 9. 9 * 2 = 19"}])
    assert row["n_given"] == 0 and row["abstained"] is True
    assert row["evidence"]["reasoning"]["closed"] is False


def test_task_metadata_chooses_the_reasoning_mode_and_delimiters():
    from halt_eval import lmeval

    options = lmeval.scoring_options({"reasoning": "reasoning", "reasoning_delimiters": "[[R]],[[/R]]"})
    scorer = lmeval.scorer_for("math", options)
    assert scorer.config.reasoning == "reasoning" and scorer.config.reasoning_delimiters == ("[[R]]", "[[/R]]")
    assert lmeval.scorer_for("math", lmeval.scoring_options({})).config.reasoning == "answer"
    with pytest.raises(ValueError, match="reasoning must be one of"):
        lmeval.scorer_for("math", lmeval.scoring_options({"reasoning": "thoughts"}))
