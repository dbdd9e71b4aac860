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


# ---------------------------------------------------------------- lm-eval runs through halt-replay

from halt_eval import lmeval  # noqa: E402

EGGS_RIGHT = ("16 - 3 - 4 = 9 eggs are left. 9 * 2 = 18. The answer is \\boxed{18}.")
EGGS_WRONG = ("16 - 3 - 4 = 9 eggs are left. 9 * 2 = 19. The answer is \\boxed{19}.")
HOUSE_RIGHT = ("80000 + 50000 = 130000. 80000 * 2.5 = 200000. 200000 + 80000 = 280000. "
               "280000 - 130000 = 150000. \\boxed{70000}")


def _replay(tmp_path, rows) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"path={path}"


def _run(tmp_path, *args: str) -> tuple[dict, dict[int, dict]]:
    out = tmp_path / "out"
    code = lmeval.run_cli(["--model", "halt-replay", "--limit", "2", "--bootstrap-iters", "0",
                           "--output_path", str(out), "--log_samples", *args])
    assert code == 0
    [results] = list(out.rglob("results_*.json"))
    samples = {}
    for path in out.rglob("samples_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            samples[sample["doc_id"]] = sample
    return json.loads(results.read_text()), samples


@pytest.fixture
def judge_calls(monkeypatch):
    """Counts the answers the scorer is asked to judge, around the real scorer."""
    calls: list[int] = []
    real = lmeval.scorer_for

    def counting(domain, options):
        scorer = real(domain, options)
        score = scorer.score

        class Counted:
            def __getattr__(self, name):
                return getattr(scorer, name)

            def score(self, responses):
                calls.append(len(responses))
                return score(responses)

        return Counted()

    monkeypatch.setattr(lmeval, "scorer_for", counting)
    return calls


def test_predict_only_makes_no_judge_call_and_a_normal_run_does(tmp_path, judge_calls):
    model_args = _replay(tmp_path, [{"task": "halt_math_gsm8k", "doc_id": 0, "response": EGGS_RIGHT},
                                    {"task": "halt_math_gsm8k", "doc_id": 1, "response": EGGS_WRONG}])
    results, samples = _run(tmp_path / "p", "--model_args", model_args, "--tasks", "halt_math_gsm8k",
                            "--predict_only")
    assert judge_calls == []
    assert samples[0]["resps"] == [[EGGS_RIGHT]] and "correctness" not in samples[0]
    results, samples = _run(tmp_path / "full", "--model_args", model_args, "--tasks", "halt_math_gsm8k")
    assert judge_calls == [2]  # one batch for the task
    assert samples[0]["correctness"] == 1.0
