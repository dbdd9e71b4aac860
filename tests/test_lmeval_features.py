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


def _run(model_args: str, tasks: list[str], metadata: dict | None = None, **kwargs):
    """lm-eval's own ``simple_evaluate`` on the halt tasks only (lm-eval's CLI also indexes its
    thousands of built-in tasks, which takes minutes on a shared machine); ``--metadata`` reaches
    the tasks through the TaskManager as the CLI passes it. Returns results and samples by doc."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    lmeval._replay_class()
    manager = TaskManager(include_path=lmeval.tasks_path(), include_defaults=False,
                          metadata={"path": model_args.split("=", 1)[1], **(metadata or {})})
    out = lm_eval.simple_evaluate(model="halt-replay", model_args=model_args, tasks=tasks,
                                  task_manager=manager, limit=kwargs.pop("limit", 2),
                                  bootstrap_iters=0, log_samples=True, **kwargs)
    samples = {s["doc_id"]: s for task in tasks for s in out["samples"][task]}
    return out, samples


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
    results, samples = _run(model_args, ["halt_math_gsm8k"], predict_only=True)
    assert judge_calls == []
    assert samples[0]["resps"] == [[EGGS_RIGHT]] and "correctness" not in samples[0]
    results, samples = _run(model_args, ["halt_math_gsm8k"])
    assert judge_calls == [2]  # one batch for the task
    assert samples[0]["correctness"] == 1.0


def test_several_samples_per_prompt_give_per_sample_rows_a_per_prompt_mean_and_best_of_k(tmp_path):
    from itertools import combinations
    from math import isnan

    model_args = _replay(tmp_path, [
        {"task": "halt_math_gsm8k_k4", "doc_id": 0,
         "responses": [EGGS_RIGHT, EGGS_WRONG, "Unsure from Here.", EGGS_RIGHT]},
        {"task": "halt_math_gsm8k_k4", "doc_id": 1, "sample": 1, "response": EGGS_WRONG},
        {"task": "halt_math_gsm8k_k4", "doc_id": 1, "sample": 0, "response": HOUSE_RIGHT},
    ])
    out, samples = _run(model_args, ["halt_math_gsm8k_k4"])
    for doc_id, sample in samples.items():
        rows = [json.loads(r) for r in sample["filtered_resps"][0]]
        assert [r["sample"] for r in rows] == [0, 1, 2, 3]
        assert len(sample["resps"][0]) == 4
        for key in ("correctness", "completeness", "f1"):
            per_sample = [r[key] for r in rows]
            defined = [v for v in per_sample if v is not None]
            assert sample[key] == pytest.approx(sum(defined) / len(defined))
            pairs = [max(a, b) for a, b in combinations(defined, 2)]  # best of k=2, by brute force
            assert sample[f"{key}_best_of_k"] == pytest.approx(sum(pairs) / len(pairs))
    # recorded rows in `sample` order, cycled up to the task's repeats
    assert samples[1]["resps"][0] == [HOUSE_RIGHT, EGGS_WRONG, HOUSE_RIGHT, EGGS_WRONG]
    assert samples[0]["abstained"] == pytest.approx(1 / 4)
    assert samples[0]["correctness_best_of_k"] > samples[0]["correctness"]
    result = out["results"]["halt_math_gsm8k_k4"]
    assert not isnan(result["f1_best_of_k,halt"])


def test_best_of_k_is_pass_at_k_on_binary_values():
    from math import comb

    values = [1.0, 0.0, 0.0, 1.0, 0.0]
    for k in (1, 2, 3):
        assert lmeval.best_of_k(values, k) == pytest.approx(1 - comb(3, k) / comb(5, k))
    assert lmeval.best_of_k([float("nan"), 1.0], 2) != lmeval.best_of_k([float("nan"), 1.0], 2)


def test_replay_renders_a_chat_template_instead_of_crashing(tmp_path):
    model_args = _replay(tmp_path, [{"task": "halt_math_gsm8k", "doc_id": 0, "response": EGGS_RIGHT},
                                    {"task": "halt_math_gsm8k", "doc_id": 1, "response": EGGS_WRONG}])
    out, samples = _run(model_args, ["halt_math_gsm8k"], apply_chat_template=True)
    prompt = samples[0]["arguments"][0][0]
    assert prompt.startswith("user: ") and prompt.endswith("\nassistant:")
    assert samples[0]["correctness"] == 1.0


def test_num_fewshot_shows_answer_text_demos(tmp_path):
    model_args = _replay(tmp_path, [{"task": "halt_math_gsm8k", "doc_id": 0, "response": EGGS_RIGHT},
                                    {"task": "halt_math_gsm8k", "doc_id": 1, "response": EGGS_WRONG}])
    out, samples = _run(model_args, ["halt_math_gsm8k"], num_fewshot=2)
    prompt = samples[0]["arguments"][0][0]
    assert prompt.count("####") == 2 and '{"' not in prompt  # answer text, no JSON reference
    assert prompt.count(samples[0]["doc"]["prompt"]) == 1  # the asked document is no demo


def test_num_fewshot_on_a_domain_without_answer_text_refuses_clearly():
    doc = {"id": "0", "task": "halt_bio", "domain": "bio", "prompt": "p",
           "reference": json.dumps({"entity": "X"}), "options": json.dumps({"domain": "bio"})}
    with pytest.raises(ValueError, match="run it with --num_fewshot 0"):
        lmeval.fewshot_target(doc)


def test_judge_settings_in_metadata_reach_the_judge_and_appear_in_results(tmp_path, monkeypatch):
    from fake_openai import FakeOpenAI

    monkeypatch.setenv("HALT_JUDGE_BACKEND", "none")  # metadata wins over the environment
    monkeypatch.setenv("HALT_JUDGE_MODEL", "env-model")
    # a wrong answer whose first step sympy cannot check: the LLM decides it
    uncheckable = ("Let n be the number of eggs Janet sells.\n16 - 3 - 4 = 9\n9 * 2 = 19\n"
                   "So the answer is \\boxed{19}.")
    model_args = _replay(tmp_path, [{"task": "halt_math_gsm8k", "doc_id": 0, "response": uncheckable},
                                    {"task": "halt_math_gsm8k", "doc_id": 1, "response": EGGS_WRONG}])
    with FakeOpenAI() as server:
        metadata = {"judge_backend": "openai", "judge_base_url": server.base_url,
                    "judge_model": "fake-judge"}
        out, samples = _run(model_args, ["halt_math_gsm8k"], metadata=metadata)
        assert server.requests, "the LLM judge was never asked"
        assert {r["model"] for r in server.requests} == {"fake-judge"}
    options = json.loads(samples[0]["doc"]["options"])
    assert options["judge_backend"] == "openai" and options["judge_base_url"] == server.base_url
    assert options["from"]["judge_backend"] == "metadata" and options["from"]["judge_model"] == "metadata"
    assert out["configs"]["halt_math_gsm8k"]["metadata"]["judge_backend"] == "openai"
    row = json.loads(samples[0]["filtered_resps"][0][0])
    assert "fake-judge" in json.dumps(row["judge_spec"]) and "openai" in json.dumps(row["judge_spec"])
    assert any(f["judge"].startswith("llm") for f in row["fragments"])
