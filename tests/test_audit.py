"""`halt-eval audit`: our verdicts against human fragment labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import toy_domain
from halt_eval.audit import (
    AuditSet,
    LabelledItem,
    auroc,
    dependent_truth,
    format_table,
    load_bio,
    load_math,
    load_med,
    measure,
    run_audit,
)
from halt_eval.cli import main
from halt_eval.score import Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.types import Response


def test_dependent_truth_is_correct_before_the_first_error_and_incorrect_from_it():
    assert dependent_truth(4, -1) == (True, True, True, True)
    assert dependent_truth(4, 0) == (False, False, False, False)
    assert dependent_truth(4, 2) == (True, True, False, False)
    with pytest.raises(ValueError):
        dependent_truth(3, 3)


def test_auroc_counts_ties_half_and_needs_both_classes():
    assert auroc([1, 1, 0, 0], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([1, 0.5, 0], [False, True, True]) == 0.0
    assert auroc([1, 1], [True, True]) is None


def _item(i: int, labels: list[str], human_first: int, solved=None) -> LabelledItem:
    steps = tuple(f"Step {k} of answer {i} says {k}." for k in range(len(labels)))
    resp = Response(id=str(i), domain="toy", prompt="p", text=" ".join(steps),
                    reference={"labels": labels, "solved": solved}, fragments=steps)
    return LabelledItem(resp, dependent_truth(len(steps), human_first))


def test_figures_against_hand_counts(label_judge):
    """Two answers of 4 steps. A: human first error at 2, ours flags step 3 and leaves step 1
    unverifiable -> misjudged steps 1 (unverifiable, human correct) and 2 (correct, human
    wrong) = 2. B: all correct for people, ours all correct = 0."""
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    items = [_item(0, ["correct", "unverifiable", "correct", "incorrect"], 2),
             _item(1, ["correct"] * 4, -1)]
    report = run_audit(scorer, [AuditSet("toy", tuple(items))])
    f = report["sets"]["toy"]
    assert f["n"] == 2 and f["fragments"] == 8
    assert f["misjudged_per_response"] == 1.0
    # correctness: A ours 2/4, human 2/4; B ours 4/4, human 4/4 -> MAE 0, bias 0
    assert f["correctness_mae"] == 0.0 and f["correctness_bias"] == 0.0
    # one flagged step (A#3), people call it wrong -> precision 1; 2 human-wrong steps -> recall 1/2
    assert f["flagged"] == 1 and f["precision_flagged"] == 1.0 and f["recall_not_correct"] == 0.5
    # correct vs not: human-correct 6 (ours correct on 5), human-wrong 2 (ours not correct on 1)
    assert f["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert f["rows"][0]["human_first_error"] == 2 and f["rows"][0]["ours_first_error"] == 3
    assert "| toy |" in format_table(report)


def test_the_dependent_rule_applies_before_comparing(label_judge):
    """Ours flags step 0 only; the scorer's dependent rule makes steps 1-2 incorrect too, so an
    answer people call wrong from step 0 has no misjudged step, and the bias is the difference
    of correctness means."""
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    items = [_item(0, ["incorrect", "correct", "correct"], 0), _item(1, ["incorrect", "correct", "correct"], -1)]
    f = run_audit(scorer, [AuditSet("toy", tuple(items))])["sets"]["toy"]
    assert f["misjudged_per_response"] == 1.5  # 0 and 3
    assert f["correctness_bias"] == pytest.approx(-50.0)  # ours 0 and 0; human 0 and 100
    assert f["correctness_mae"] == pytest.approx(50.0)
    assert f["precision_flagged"] == pytest.approx(0.5)


def test_an_answer_whose_fragments_are_not_in_it_is_left_out_and_named(label_judge):
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    good = _item(0, ["correct", "correct"], -1)
    bad = LabelledItem(Response(id="bad", domain="toy", prompt="p", text="something else",
                                reference={"labels": ["correct"]}, fragments=("not here",)), (True,))
    f = measure([good, bad], scorer.score([good.response, bad.response]))
    assert f["n"] == 1 and f["n_skipped"] == 1 and f["skipped"][0]["id"] == "bad"
    assert "does not occur" in f["skipped"][0]["why"]


def test_math_loader_joins_references_and_labels(shared_data: Path):
    sets = load_math(shared_data, limit=5)
    assert [s.name for s in sets] == ["gsm8k", "math"]
    for s in sets:
        assert len(s.items) == 5
        for it in s.items:
            assert it.response.reference.get("answer") and len(it.human) == len(it.response.fragments)
            assert it.response.text == "\n\n".join(it.response.fragments)
    raw = json.loads((shared_data / "math" / "processbench" / "gsm8k.dev.json").read_text())[:5]
    for row, it in zip(raw, sets[0].items):
        assert it.human == dependent_truth(len(row["steps"]), row["label"])


def test_cli_audit_math_prints_the_table_and_writes_json(shared_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "audit.json"
    code = main(["audit", "--domain", "math", "--data", str(shared_data), "--limit", "4", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "misjudged/resp" in printed and "| gsm8k |" in printed and "| math |" in printed
    report = json.loads(out.read_text())
    for name in ("gsm8k", "math"):
        f = report["sets"][name]
        assert f["n"] == 4 and f["misjudged_per_response"] is not None
        assert len(f["rows"]) == 4 and f["correctness_mae"] >= 0
    assert report["judge_spec"]["judge"]["name"] == "sympy"


def test_cli_audit_refuses_a_missing_data_dir(tmp_path: Path, capsys):
    assert main(["audit", "--domain", "math", "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["audit", "--domain", "math", "--data", str(tmp_path)]) == 2
    assert "cannot read the labelled data" in capsys.readouterr().err


# ------------------------------------------------------------------ bio and med loaders

def test_bio_loader_keeps_s_and_ns_facts_and_builds_the_reference_from_other_models(shared_data: Path):
    from halt_eval.labelled import factscore_bios

    sets = load_bio(shared_data, limit=3)
    assert [s.name for s in sets] == ["factscore_ChatGPT", "factscore_InstructGPT", "factscore_PerplexityAI"]
    bios = factscore_bios(shared_data)
    first = sets[0].items[0]
    raw = next(b for b in bios["ChatGPT"] if first.response.id == f"ChatGPT|{b['topic']}")
    facts = [f for a in raw["annotations"] for f in a.get("human-atomic-facts") or []]
    kept = [f for f in facts if f["label"] in ("S", "NS")]
    assert first.response.fragments == tuple(f["text"].strip() for f in kept)
    assert first.human == tuple(f["label"] == "S" for f in kept)
    assert first.response.text == "\n".join(first.response.fragments)
    # the reference holds the other models' S facts about the person, never this bio's own
    page = first.response.reference["passages"][0]
    own_only = {f["text"].strip() for f in facts} - {
        f["text"].strip() for m in ("InstructGPT", "PerplexityAI") for b in bios[m] if b["topic"] == raw["topic"]
        for a in b["annotations"] for f in a.get("human-atomic-facts") or []}
    assert own_only and not any(t in page for t in own_only)
    other_s = [f["text"].strip() for b in bios["InstructGPT"] if b["topic"] == raw["topic"]
               for a in b["annotations"] for f in a.get("human-atomic-facts") or [] if f["label"] == "S"]
    assert other_s and all(t in page for t in other_s)
    # IR facts are counted as left out over the whole file, not only the loaded bios
    assert all(len(s.items) == 3 for s in sets)
    assert sets[0].left_out["IR facts"] > 0


def test_bio_loader_with_a_corpus_gives_only_the_topic(shared_data: Path):
    s = load_bio(shared_data, limit=2, corpus=True)[0]
    assert all(set(it.response.reference) == {"topic"} for it in s.items)


def test_med_loader_groups_kqa_by_answer_and_keeps_labelled_factbench_claims(shared_data: Path):
    import csv

    sets = {s.name: s for s in load_med(shared_data)}
    assert set(sets) == {"kqa", "factcheck_gpt"}
    kqa = sets["kqa"]
    rows = list(csv.DictReader((shared_data / "med" / "k-qa" / "NLI_medical_annotator.dev.csv").open(
        newline="", encoding="utf-8")))
    assert sum(len(it.human) for it in kqa.items) == len(rows)
    assert sum(sum(it.human) for it in kqa.items) == sum(r["majority_label"] == "Entailment" for r in rows)
    first = kqa.items[0]
    same = [r for r in rows if r["Question"] == rows[0]["Question"] and r["llm_x"] == rows[0]["llm_x"]]
    assert first.response.fragments == tuple(r["claim"].strip() for r in same)
    assert first.response.reference == {"answer": same[0]["answer"]}
    fc = sets["factcheck_gpt"]
    # 631 of Factbench's labelled claims belong to responses with evidence; "unknown" left out
    assert sum(len(it.human) for it in fc.items) == 631 and fc.left_out["claims labelled unknown"] == 47
    assert all(it.response.reference["answer"] for it in fc.items)
    assert load_med(shared_data, limit=4)[0].items == kqa.items[:4]


def test_auroc_p_uses_the_judges_probability_only_when_every_verdict_has_one():
    from halt_eval.types import Fragment, ScoredResponse, Verdict

    resp = Response(id="r", domain="med", prompt="p", text="a\nb\nc", reference={}, fragments=("a", "b", "c"))
    item = LabelledItem(resp, (True, False, True))
    frags = tuple(Fragment(i, t, (2 * i, 2 * i + 1), "independent") for i, t in enumerate("abc"))

    def scored(*verdicts):
        return ScoredResponse(response=resp, fragments=frags, verdicts=verdicts, abstained=False, n_desired=None)

    # labels alone cannot rank a and c above b (all unverifiable); the probabilities can
    v = [Verdict("unverifiable", "j", "x", "", {"p_supported": p}) for p in (0.4, 0.3, 0.35)]
    f = measure([item], [scored(*v)])
    assert f["auroc"] == 0.5 and f["auroc_p"] == 1.0
    # an incorrect verdict scores 0 whatever its probability
    v2 = [v[0], Verdict("incorrect", "j", "x", "", {"p_supported": 0.9}), v[2]]
    assert measure([item], [scored(*v2)])["auroc_p"] == 1.0
    v3 = [v[0], Verdict("correct", "j", "x", ""), v[2]]
    assert measure([item], [scored(*v3)])["auroc_p"] is None


# ------------------------------------------------------------------ with an LLM backend

def _kqa_folder(root: Path) -> Path:
    """A data folder in the shared layout with one K-QA answer and five labelled statements."""
    import csv

    path = root / "med" / "k-qa" / "NLI_medical_annotator.csv"
    path.parent.mkdir(parents=True)
    answer = "Rest and fluids help most colds get better within a week."
    labelled = [("Aspirin thins the blood.", "Entailment"), ("Aspirin reduces fever in adults.", "Neutral"),
                ("Zebras have stripes.", "Entailment"), ("Penguins are birds of the south.", "Neutral"),
                ("Aspirin is sold in pharmacies.", "Neutral")]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["", "Question", "llm_x", "answer", "claim", "category_x", "majority_label",
                    "label_0", "label_1", "label_2"])
        for i, (claim, label) in enumerate(labelled):
            w.writerow([i, "How do I treat a cold?", "gpt4", answer, claim, "Must_have", label, label, label, label])
    return root


def _aspirin_judge(body) -> str:
    """An LLM that calls every claim about aspirin supported and every other one contradicted."""
    import re

    from fake_openai import user_text

    claim = re.search(r"^Claim: (.*)$", user_text(body), re.M).group(1)
    label = "supported" if "aspirin" in claim.lower() else "contradicted"
    return json.dumps({"label": label, "passage": None, "explanation": f"rule: {label}"})


def test_cli_audit_with_an_openai_backend_measures_the_llms_verdicts(tmp_path: Path, capsys):
    """People: statements 1 and 3 entailed. The embedded judge finds none of the five in an
    answer about colds (all unverifiable, so it would misjudge 1 and 3); the LLM says 1, 2, 5
    supported and 3, 4 contradicted: misjudged 2, 3 and 5 = 3, correctness ours 60 vs human
    40 (bias +20), one of the two flagged statements wrong for people (precision 0.5)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    data = _kqa_folder(tmp_path / "data")
    out = tmp_path / "audit.json"
    with FakeOpenAI(_aspirin_judge) as server:
        code = main(["audit", "--domain", "med", "--data", str(data), "--json", str(out),
                     "--judge-backend", "openai", "--judge-base-url", server.base_url,
                     "--judge-cache", str(tmp_path / "cache.sqlite")])
        asked = [json.loads(json.dumps(r)) for r in server.requests]
    assert code == 0
    assert "| kqa |" in capsys.readouterr().out
    report = json.loads(out.read_text())
    f = report["sets"]["kqa"]
    assert len(asked) == 5
    assert f["rows"][0]["reasons"] == ["llm_supported", "llm_supported", "llm_contradicted",
                                       "llm_contradicted", "llm_supported"]
    assert f["n"] == 1 and f["misjudged_per_response"] == 3.0
    assert f["ours_correctness"] == pytest.approx(60.0) and f["human_correctness"] == pytest.approx(40.0)
    assert f["correctness_bias"] == pytest.approx(20.0) and f["correctness_mae"] == pytest.approx(20.0)
    assert f["precision_flagged"] == 0.5 and f["auroc_p"] is None
    assert report["judge_spec"]["judge"]["fallback"]["name"] == "llm"


def test_cli_audit_math_with_an_openai_backend_takes_the_llms_first_error(shared_data: Path, tmp_path: Path):
    """An LLM that always answers "step 1 is wrong": in every answer whose first step sympy
    left unverifiable, that step becomes the LLM's ``incorrect`` first error and every later
    step follows it, so the row's misjudged count is the human-correct steps of the answer."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAI

    plain, llm = tmp_path / "plain.json", tmp_path / "llm.json"
    # Reference support off: the steps it vouches for would never reach the LLM.
    args = ["audit", "--domain", "math", "--data", str(shared_data), "--limit", "6",
            "--judge-arg", "reference_support=false"]
    assert main(args + ["--json", str(plain)]) == 0
    with FakeOpenAI(lambda b: '{"first_error_step": 1, "explanation": "rule"}') as server:
        assert main(args + ["--json", str(llm), "--judge-backend", "openai", "--judge-base-url",
                            server.base_url, "--judge-cache", str(tmp_path / "c.sqlite")]) == 0
        assert server.requests
    a, b = json.loads(plain.read_text()), json.loads(llm.read_text())
    changed = 0
    for name in ("gsm8k", "math"):
        for before, after in zip(a["sets"][name]["rows"], b["sets"][name]["rows"]):
            if after["reasons"][0] != "llm_first_error":
                assert not any(x == "llm_first_error" for x in after["reasons"])
                continue
            changed += 1
            assert before["reasons"][0] not in ("after_first_error",) and before["ours_first_error"] != 0
            assert after["ours_first_error"] == 0
            assert set(after["reasons"][1:]) <= {"after_first_error"}
            human_correct = after["human_first_error"] if after["human_first_error"] >= 0 else len(after["reasons"])
            assert after["misjudged"] == human_correct
    assert changed > 0


def test_the_labelled_readers_ship_in_the_package_and_the_benchmark_uses_them():
    """``halt-eval audit`` works from a wheel: nothing in the package imports benchmarks/, and
    the claims benchmark reads the upstream files through the package's readers."""
    import ast
    import sys

    import halt_eval

    root = Path(halt_eval.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("benchmarks", "claims_data") for n in names), path
    import importlib.util

    from halt_eval import labelled

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "claims_data.py"
    spec = importlib.util.spec_from_file_location("claims_data_under_test", bench)
    claims_data = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = claims_data  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(claims_data)
    finally:
        del sys.modules[spec.name]

    assert claims_data.kqa_rows is labelled.kqa_rows
    assert claims_data.build_factscore_reference is labelled.build_factscore_reference
