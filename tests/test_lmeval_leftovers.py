"""Leftovers of running current checkpoints: chat-form code answers (which fenced block is the
code), natural abstention beside the marker, and the judge dry run."""

from __future__ import annotations

import shutil

import pytest

from halt_eval.judges.code_lines import CodeLineSplitter, code_lines, code_region
from halt_eval.types import Response

SOLUTION = "def add(a, b):\n    total = a + b\n    return total\n"
USAGE = "print(add(2, 3))  # 5\n"
#: A chat answer: a prose line, an example-usage block first, then the solution block, then prose.
CHAT = (f"Here is how you would call it, and the function itself:\n```python\n{USAGE}```\n"
        f"The solution:\n```python\n{SOLUTION}```\nThis runs in O(1).")
HUMANEVAL_REF = {"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
                 "entry_point": "add", "prompt": "def add(a, b):\n", "solution": SOLUTION}


def _lines(text: str, entry_point: str | None = None) -> list[str]:
    return [text[a:b] for a, b in (ln.span for ln in code_lines(text, entry_point))]


@pytest.mark.parametrize("text", [
    CHAT,  # usage block before the solution
    f"Solution:\n```python\n{SOLUTION}```\nExample usage:\n```python\n{USAGE}```\n",  # after it
    f"```python\n{SOLUTION}```\nOutput:\n```\n5\n```\n",  # an unlabelled output block after it
])
def test_the_block_defining_the_entry_point_is_the_code(text):
    expected = ["def add(a, b):", "total = a + b", "return total"]
    assert _lines(text, "add") == expected
    # without an entry point: the last complete block that defines a function
    assert _lines(text) == expected
    [pieces] = CodeLineSplitter().split([text], [Response("x", "code", "", text, HUMANEVAL_REF)])
    assert [p.text for p in pieces] == expected
    assert all(text[p.span[0]:p.span[1]] == p.text for p in pieces)


def test_block_choice_falls_back_to_the_last_complete_block_then_an_unclosed_one():
    two = "```python\nx = 1\n```\nthen\n```python\ny = 2\n```\n"
    assert _lines(two) == ["y = 2"]
    # a helper defined in a later block does not win over the block defining the entry point
    helper = f"```python\n{SOLUTION}```\n```python\ndef helper():\n    return 0\n```\n"
    assert _lines(helper, "add")[0] == "def add(a, b):" and _lines(helper)[0] == "def helper():"
    # an answer cut inside its only block (at the marker) keeps that block
    cut = "Sure:\n```python\ndef add(a, b):\n    return"
    assert _lines(cut, "add") == ["def add(a, b):", "return"]
    # a complete block beats one cut short after it
    assert _lines("```python\nx = 1\n```\n```python\ny = (", None) == ["x = 1"]
    # the python block still wins over another language
    mixed = "```py\na = 1\n```\n```text\nnot code\n```\n"
    start, end = code_region(mixed)
    assert mixed[start:end] == "a = 1\n"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_a_chat_answer_with_a_usage_block_is_judged_on_its_solution_block():
    from halt_eval.judges.sandbox_code import SandboxJudge
    from halt_eval.score import Scorer

    scorer = Scorer.for_domain("code", judge=SandboxJudge(test_timeout_s=2.0))
    [scored] = scorer.score([Response("chat", "code", "", CHAT, HUMANEVAL_REF)])
    assert [f.text for f in scored.fragments] == ["def add(a, b):", "total = a + b", "return total"]
    assert [v.label for v in scored.verdicts] == ["correct"] * 3
    assert scored.solved


# ------------------------------------------------------------------ natural abstention

@pytest.mark.parametrize("text,phrase", [
    ("I don't know who she was.", "dont_know"),
    ("I do not know.", "dont_know"),
    ("I\u2019m not sure about her death year.", "not_sure"),  # curly apostrophe
    ("I am uncertain whether he won.", "not_sure"),
    ("I cannot provide medical advice.", "cannot_provide"),
    ("I'm unable to verify that claim.", "cannot_provide"),
    ("I do not have enough information about this person.", "no_information"),
    ("I have no reliable data on it.", "no_information"),
    ("I couldn't find any information on him.", "could_not_find"),
    ("There is no reliable information about this drug.", "no_information_available"),
    ("That is beyond my knowledge.", "beyond_knowledge"),
    ("I'm not familiar with this village.", "not_familiar"),
])
def test_a_first_person_abstention_sentence_is_detected_with_its_phrase(text, phrase):
    from halt_eval.abstain import PHRASES, detect

    found = detect(f"Ada Lovelace was born in 1815. {text}")
    assert phrase in PHRASES
    assert found is not None and [s["phrase"] for s in found["sentences"]] == [phrase]
    assert found["sentences"][0]["text"] == text and found["first_offset"] == 31
    assert found["whole"] is False and detect(text)["whole"] is True


@pytest.mark.parametrize("text", [
    "The cause of the disease is unknown.",  # a fact about the world, not the speaker declining
    "He said he was not sure about the date.",  # someone else's doubt
    "Nobody knows where he was buried.",
    "Take 200 mg twice a day; I know this from the label.",
    "Unsure from Here",  # the marker is HALT's own and reported as abstained, not here
])
def test_statements_that_are_not_the_speaker_declining_are_not_abstention(text):
    from halt_eval.abstain import detect

    assert detect(text) is None


MATH_REF = {"answer": "18", "solution": "16 - 3 - 4 = 9\n9 * 2 = 18\n#### 18"}


def test_natural_abstention_is_reported_beside_the_marker_and_changes_no_score(tmp_path, capsys):
    import json

    from halt_eval.cli import main

    rows = [  # own words only; the marker only; both; neither
        {"id": "own", "prompt": "eggs", "response": "16 - 3 - 4 = 9. I'm not sure about the rest.", "reference": MATH_REF},
        {"id": "marker", "prompt": "eggs", "response": "16 - 3 - 4 = 9. Unsure from Here. 9 * 2 = 19.", "reference": MATH_REF},
        {"id": "both", "prompt": "eggs", "response": "I don't know how to finish. Unsure from Here.", "reference": MATH_REF},
        {"id": "none", "prompt": "eggs", "response": "16 - 3 - 4 = 9. 9 * 2 = 18. \\boxed{18}", "reference": MATH_REF},
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = {}
    for flag in ((), ("--natural-abstention",)):
        path, summary = tmp_path / f"out{len(flag)}.jsonl", tmp_path / f"s{len(flag)}.json"
        assert main(["score", str(inp), "--domain", "math", "-o", str(path), "--summary-json", str(summary),
                     *flag]) == 0
        out[bool(flag)] = ({r["id"]: r for r in map(json.loads, path.read_text().splitlines())},
                           json.loads(summary.read_text()))
    (off, s_off), (on, s_on) = out[False], out[True]
    assert {i: r["abstained"] for i, r in on.items()} == {"own": False, "marker": True, "both": True, "none": False}
    for i in on:  # scores and the marker's abstention are the same with the option on or off
        for key in ("abstained", "correctness", "completeness", "f1", "n_given", "n_correct"):
            assert on[i][key] == off[i][key], (i, key)
        assert "natural_abstention" not in off[i].get("evidence", {})
    natural = {i: r.get("evidence", {}).get("natural_abstention") for i, r in on.items()}
    assert natural["marker"] is None and natural["none"] is None
    assert natural["own"]["sentences"][0]["text"] == "I'm not sure about the rest."
    span = natural["own"]["sentences"][0]["span"]
    assert on["own"]["response"][span[0]:span[1]] == "I'm not sure about the rest."
    assert natural["both"]["sentences"][0]["phrase"] == "dont_know"
    assert s_on["natural_abstention"] == {"n": 2, "rate": 0.5, "with_marker": 1, "without_marker": 1,
                                          "marker_only": 1}
    assert "natural_abstention" not in s_off and s_on["abstained"] == s_off["abstained"] == 0.5
    assert on["own"]["judge_spec"]["natural_abstention"] is True
    assert "natural abstention 0.5000" in capsys.readouterr().out


def test_task_metadata_natural_abstention_reaches_the_scorer():
    from halt_eval import lmeval

    options = lmeval.scoring_options({"natural_abstention": True})
    assert options["from"]["natural_abstention"] == "metadata"
    assert lmeval.scorer_for("math", options).config.natural_abstention is True
    assert lmeval.scorer_for("math", lmeval.scoring_options({})).config.natural_abstention is False
    assert lmeval.scorer_for("math", {"natural_abstention": "false"}).config.natural_abstention is False


# ------------------------------------------------------------------ judge dry run

DRY_ROWS = [  # two answers whose steps sympy cannot check (the LLM is asked), one it can
    {"id": "a", "prompt": "eggs", "response": "She has 16 eggs and eats some. So she sells the rest. \\boxed{18}", "reference": MATH_REF},
    {"id": "b", "prompt": "eggs", "response": "The ducks lay many eggs. Then she bakes muffins. \\boxed{20}", "reference": MATH_REF},
    {"id": "c", "prompt": "eggs", "response": "16 - 3 - 4 = 9. 9 * 2 = 18. \\boxed{18}", "reference": MATH_REF},
]


def test_judge_dry_run_counts_the_calls_and_prompt_characters_a_real_run_then_makes(tmp_path, capsys):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI, rule_responder

    from halt_eval.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in DRY_ROWS))
    out, plan_path, cache = tmp_path / "out.jsonl", tmp_path / "plan.json", tmp_path / "cache.sqlite"
    with FakeOpenAI(rule_responder) as server:
        args = ["score", str(inp), "--domain", "math", "-o", str(out), "--judge-backend", "openai",
                "--judge-base-url", server.base_url, "--judge-model", "fake-judge", "--judge-cache", str(cache)]
        assert main([*args, "--judge-dry-run", "--summary-json", str(plan_path)]) == 0
        assert server.requests == [] and not out.exists()  # nothing sent, nothing written
        plan = json.loads(plan_path.read_text())["judge_dry_run"]
        printed = capsys.readouterr().out
        assert main(args) == 0  # the real run
        sent = list(server.requests)
        assert plan["llm_calls"] == len(sent) >= 1
        chars = sum(len(m["content"]) for body in sent for m in body["messages"])
        assert plan["prompt_chars"] == chars and plan["prompt_tokens_estimate"] == -(-chars // 4)
        assert plan["by_template"] == {"math_first_error@1": len(sent)} and plan["cache_hits"] == 0
        assert f"LLM calls          {len(sent)}" in printed and "characters / 4" in printed
        # a second dry run finds the replies in the cache: nothing left to call
        assert main([*args, "--judge-dry-run", "--summary-json", str(plan_path)]) == 0
        again = json.loads(plan_path.read_text())["judge_dry_run"]
        assert again["llm_calls"] == 0 and again["cache_hits"] == len(sent)
        assert len(server.requests) == len(sent)
    capsys.readouterr()
    # without an LLM judge there is nothing to count: a usage error
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--judge-dry-run"]) == 2
    assert "--judge-dry-run counts LLM calls" in capsys.readouterr().err


def test_lmeval_metadata_judge_dry_run_prints_the_plan_and_stops_before_any_call(tmp_path, capsys):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import lm_eval
    from fake_openai import FakeOpenAI, rule_responder
    from lm_eval.tasks import TaskManager

    from halt_eval import lmeval

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"task": "halt_math_gsm8k", "doc_id": i, "response": r["response"]}) + "\n"
                               for i, r in enumerate(DRY_ROWS[:2])))
    lmeval._replay_class()
    with FakeOpenAI(rule_responder) as server:
        metadata = {"judge_backend": "openai", "judge_base_url": server.base_url,
                    "judge_model": "fake-judge", "judge_dry_run": True}
        manager = TaskManager(include_path=lmeval.tasks_path(), include_defaults=False,
                              metadata={"path": str(answers), **metadata})
        with pytest.raises(lmeval.JudgeDryRun) as stop:
            lm_eval.simple_evaluate(model="halt-replay", model_args=f"path={answers}",
                                    tasks=["halt_math_gsm8k"], task_manager=manager, limit=2,
                                    bootstrap_iters=0)
        assert server.requests == []
    assert stop.value.code == 0
    plan = stop.value.plan
    assert plan["task"] == "halt_math_gsm8k" and plan["answers"] == 2 and plan["llm_calls"] >= 1
    assert plan["prompt_tokens_estimate"] == -(-plan["prompt_chars"] // 4)
    assert "halt_math_gsm8k: judge dry run: 2 answers" in capsys.readouterr().err


def test_halt_eval_run_passes_judge_dry_run_as_metadata():
    import argparse

    from halt_eval import lmeval

    ours = argparse.Namespace(corpus=None, data_dir=None, judge_dry_run=True)
    assert lmeval._metadata_from(ours, ["--metadata", '{"judge_backend": "openai"}']) == {
        "judge_backend": "openai", "judge_dry_run": True}


# ------------------------------------------------------------------ task folder conventions

def _task_folders():
    from pathlib import Path

    from halt_eval.lmeval import tasks_path

    return sorted(p for p in Path(tasks_path()).glob("halt_*") if p.is_dir())


def test_every_task_folder_has_a_readme_naming_its_tasks_data_prompt_and_changelog():
    folders = _task_folders()
    assert {f.name for f in folders} == {"halt_bio", "halt_code", "halt_math", "halt_med"}
    for folder in folders:
        readme = (folder / "README.md").read_text(encoding="utf-8")
        for section in ("**What it measures.**", "**Data and license.**", "**Prompt.**",
                        "**Reasoning models.**", "## Changelog", "Tags:"):
            assert section in readme, f"{folder.name}/README.md lacks {section}"
        for yaml_path in folder.glob("*.yaml"):
            assert f"`{yaml_path.stem}`" in readme, f"{folder.name}/README.md does not name {yaml_path.stem}"


def test_every_task_has_tags_lm_eval_indexes_and_the_code_tasks_explain_unsafe_code():
    import yaml
    from lm_eval.tasks import TaskManager

    from halt_eval.lmeval import tasks_path

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    expected: dict[str, set[str]] = {}
    for folder in _task_folders():
        for path in folder.glob("*.yaml"):
            text = path.read_text(encoding="utf-8")
            cfg = yaml.load(text, Loader=Loader)
            assert cfg.get("tag"), f"{path.name} has no tag"
            assert not any(t.startswith("halt_") for t in cfg["tag"])
            for t in cfg["tag"]:
                expected.setdefault(t, set()).add(cfg["task"])
            assert "max_gen_toks=4096" in text, f"{path.name}: no generation-length note for reasoning models"
            if folder.name == "halt_code":
                assert "unsafe_code" not in cfg  # the sandbox is why; the comment says so
                assert "`unsafe_code: true`" in text and "bubblewrap sandbox" in text
    assert set(expected["code_generation"]) == {"halt_code", "halt_code_apps", "halt_code_humaneval",
                                                "halt_code_mbppplus"}
    manager = TaskManager(include_path=tasks_path(), include_defaults=False)
    for tag, tasks in expected.items():
        assert tag in manager.all_tags, tag
        assert set(manager.task_index[tag].tags) == tasks, tag  # a tag entry lists its tasks


# ------------------------------------------------------------------ gate on lm-eval repeats runs

def test_gate_pairs_two_lmeval_repeats_4_runs_and_compares_lmevals_own_task_means(tmp_path):
    """Two halt-replay runs of halt_math_gsm8k_k4 (4 samples per problem), written as lm-eval's
    --log_samples writes them; the gate pairs them by (task, id, sample) and its task statistic
    is lm-eval's (the mean over problems of each problem's mean over samples)."""
    import json

    import lm_eval
    from lm_eval.tasks import TaskManager

    from halt_eval import lmeval
    from halt_eval.gate import gate
    from halt_eval.runs import load_run

    right = "16 - 3 - 4 = 9 eggs are left. 9 * 2 = 18. The answer is \\boxed{18}."
    wrong = "16 - 3 - 4 = 9 eggs are left. 9 * 2 = 19. The answer is \\boxed{19}."
    lmeval._replay_class()

    def run(name, answers):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"task": "halt_math_gsm8k_k4", "doc_id": d, "responses": r}) + "\n"
                                for d, r in enumerate(answers)))
        manager = TaskManager(include_path=lmeval.tasks_path(), include_defaults=False)
        out = lm_eval.simple_evaluate(model="halt-replay", model_args=f"path={path}",
                                      tasks=["halt_math_gsm8k_k4"], task_manager=manager, limit=2,
                                      bootstrap_iters=0, log_samples=True)
        folder = tmp_path / name / "model"
        folder.mkdir(parents=True)
        samples = out["samples"]["halt_math_gsm8k_k4"]
        (folder / "samples_halt_math_gsm8k_k4_2026-11-29T10-00-00.000001.jsonl").write_text(
            "".join(json.dumps(s, default=str) + "\n" for s in samples))
        return folder, out["results"]["halt_math_gsm8k_k4"]

    base_dir, base_res = run("base", [[right, wrong, wrong, wrong], [wrong, wrong, right, wrong]])
    cand_dir, cand_res = run("cand", [[right, right, right, wrong], [wrong, wrong, right, wrong]])
    base, cand = load_run(base_dir), load_run(cand_dir)
    assert base.n_samples == cand.n_samples == 8  # every generation is a row
    [task] = gate(base, cand, resamples=200)
    assert task.n_pairs == 8 and task.n_documents == 2
    metrics = {m.metric: m for m in task.metrics}
    for key in ("correctness", "f1"):
        assert metrics[key].baseline == pytest.approx(base_res[f"{key},halt"])
        assert metrics[key].candidate == pytest.approx(cand_res[f"{key},halt"])
    assert metrics["correctness"].change > 0


# ------------------------------------------------------------------ answer budget as metadata

def test_task_metadata_answer_budget_and_clock_reach_the_scorer():
    from halt_eval import lmeval
    from halt_eval.budget import DEFAULT_ANSWER_BUDGET

    config = lmeval.scorer_for("med", lmeval.scoring_options({"answer_budget": "1.5", "budget_clock": "wall"})).config
    assert (config.answer_budget, config.budget_clock) == (1.5, "wall")
    assert lmeval.scorer_for("med", lmeval.scoring_options({"answer_budget": "off"})).config.answer_budget is None
    default = lmeval.scorer_for("med", lmeval.scoring_options({})).config
    assert (default.answer_budget, default.budget_clock) == (DEFAULT_ANSWER_BUDGET, "cpu")
    for bad, match in ((-2, "answer budget must be"), ("soon", "answer budget must be"),
                       ("nan", "answer budget must be")):
        with pytest.raises(ValueError, match=match):
            lmeval.scorer_for("med", lmeval.scoring_options({"answer_budget": bad}))
    with pytest.raises(ValueError, match="budget clock must be one of cpu, wall"):
        lmeval.scorer_for("med", lmeval.scoring_options({"budget_clock": "sundial"}))


def test_halt_eval_run_passes_the_answer_budget_as_metadata_and_refuses_a_bad_one():
    import argparse

    from halt_eval import lmeval

    ours = argparse.Namespace(corpus=None, data_dir=None, answer_budget="2.5", budget_clock="wall")
    assert lmeval._metadata_from(ours, []) == {"answer_budget": "2.5", "budget_clock": "wall"}
    with pytest.raises(SystemExit, match="--answer-budget: answer budget must be"):
        lmeval._metadata_from(argparse.Namespace(corpus=None, data_dir=None, answer_budget="-1"), [])


def test_an_lm_eval_run_with_a_tiny_answer_budget_leaves_each_answer_over_budget(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_lmeval_features import _replay, _run

    task = "halt_med_medlfqa_kqa_silver"
    answer = "Ibuprofen can upset the stomach. Take it with food. It is an NSAID."
    model_args = _replay(tmp_path, [{"task": task, "doc_id": i, "response": answer} for i in range(2)])
    _, samples = _run(model_args, [task], metadata={"answer_budget": 1e-9})
    for sample in samples.values():
        row = json.loads(sample["filtered_resps"][0][0])
        assert [f["reason"] for f in row["fragments"]] == ["over_budget"]
        assert row["evidence"]["budget"]["seconds"] == 1e-9
    _, samples = _run(model_args, [task])
    assert all("budget" not in json.loads(s["filtered_resps"][0][0])["evidence"] for s in samples.values())
