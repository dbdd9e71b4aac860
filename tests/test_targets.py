"""HALT finetuning targets: sample choice and trimming against hand-computed cases."""

from __future__ import annotations

import json

import pytest

from halt_eval.cli import main
from halt_eval.runs import load_run
from halt_eval.split import cut_at_marker
from halt_eval.targets import MARKER, TargetError, build_targets, position
from tests.conftest import load_cases

CASES = load_cases("targets")
KINDS = {"math": "dependent", "code": "dependent", "bio": "independent", "med": "independent"}


def _row(case: dict, s: dict) -> dict:
    """A scored row as ``halt-eval score`` writes it, spans found from the fragment texts."""
    text = s["response"]
    cut = cut_at_marker(text)
    fragments, pos = [], 0
    for i, (span_text, label, *claim) in enumerate(s["fragments"]):
        start = text.index(span_text, pos)
        pos = start + len(span_text)
        fragments.append({"index": i, "text": claim[0] if claim else span_text, "span": [start, pos],
                          "kind": KINDS[case["domain"]], "verdict": label, "reason": "given",
                          "judge": "labels@1"})
    return {"schema_version": 2, "rules_version": "2", "id": "q1", "task": f"halt_{case['domain']}",
            "domain": case["domain"], "prompt": case["prompt"], "response": text, "reference": {},
            "fragments": fragments, "marker_offset": cut.marker_offset, "sample": s["sample"],
            "judge_spec": {"name": "labels", "version": "1"}}


def _write_run(tmp_path, case: dict):
    path = tmp_path / f"{case['name']}.jsonl"
    # written out of sample order: the choice must not depend on file order
    rows = [_row(case, s) for s in reversed(case["samples"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_chosen_sample_and_target(tmp_path, case):
    run = load_run(_write_run(tmp_path, case))
    alphas = [float(a) for a in case["expected"]]
    targets = build_targets(run.rows(), alphas)
    assert len(targets) == len(alphas)
    for t, (alpha, want) in zip(targets, case["expected"].items()):
        got = t.to_row(run.name)
        prov = got["provenance"]
        assert (prov["alpha"], prov["sample"], prov["order"]) == (float(alpha), want["sample"], want["order"]), alpha
        assert got["messages"] == [{"role": "user", "content": case["prompt"]},
                                   {"role": "assistant", "content": want["text"]}], alpha
        assert prov["n_capable"] == case["n_capable"]
        assert prov["n_samples"] == 5 and prov["task"] == f"halt_{case['domain']}" and prov["id"] == "q1"
        chosen = next(s for s in case["samples"] if s["sample"] == want["sample"])
        labels = [f[1] for f in chosen["fragments"]]
        assert prov["verdict_counts"] == {k: labels.count(k) for k in ("correct", "incorrect", "unverifiable")}
        assert prov["rules_version"] == "2" and prov["judge_spec"] == {"name": "labels", "version": "1"}
        n_correct = labels.count("correct")
        assert prov["completeness_capable"] == pytest.approx(min(1.0, n_correct / case["n_capable"]))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_addon_variant_keeps_errors_after_marker(tmp_path, case):
    run = load_run(_write_run(tmp_path, case))
    for alpha, want in case["expected_addon"].items():
        (t,) = build_targets(run.rows(), [float(alpha)], variant="addon")
        assert t.text == want, alpha
        halt = build_targets(run.rows(), [float(alpha)])[0].text
        # the add-on target starts with the HALT target when something was trimmed
        assert want == halt or want.startswith(halt.removesuffix(MARKER))


@pytest.mark.parametrize("alpha,n,pos", [(0.4, 5, 2), (0.6, 5, 3), (0.8, 5, 4), (0.1, 5, 1),
                                         (1.0, 5, 5), (0.6, 10, 6), (0.3, 1, 1),
                                         # alpha*N a hair above an integer in floating point
                                         (0.28, 25, 7), (0.55, 100, 55)])
def test_position_is_ceil_alpha_n(alpha, n, pos):
    assert position(alpha, n) == pos


def test_bad_alpha_and_missing_prompt_are_named(tmp_path):
    case = CASES[0]
    run = load_run(_write_run(tmp_path, case))
    with pytest.raises(TargetError, match="alpha"):
        build_targets(run.rows(), [0.0])
    rows = [json.loads(line) for line in _write_run(tmp_path, case).read_text().splitlines()]
    for r in rows:
        r["prompt"] = ""
    path = tmp_path / "noprompt.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TargetError, match="'halt_math' id 'q1'"):
        build_targets(load_run(path).rows(), [0.4])


def test_cli_writes_one_file_per_alpha(tmp_path, capsys):
    runs = [str(_write_run(tmp_path, c)) for c in CASES]
    out = tmp_path / "targets_{alpha}.jsonl"
    assert main(["targets", *runs, "-o", str(out), "--alpha", "0.4", "0.8"]) == 0
    for alpha in ("0.4", "0.8"):
        rows = [json.loads(line) for line in (tmp_path / f"targets_{alpha}.jsonl").read_text().splitlines()]
        assert [r["provenance"]["task"] for r in rows] == [f"halt_{c['domain']}" for c in CASES]
        for r, c in zip(rows, CASES):
            assert r["messages"][1]["content"] == c["expected"][alpha]["text"]
            assert r["provenance"]["run"] == c["name"] and r["provenance"]["variant"] == "halt"
    single = tmp_path / "all.jsonl"
    assert main(["targets", runs[0], "-o", str(single), "--alpha", "0.4", "0.6", "0.8",
                 "--variant", "addon"]) == 0
    rows = [json.loads(line) for line in single.read_text().splitlines()]
    assert [r["provenance"]["alpha"] for r in rows] == [0.4, 0.6, 0.8]
    assert rows[0]["messages"][1]["content"] == CASES[0]["expected_addon"]["0.4"]
    assert main(["targets", runs[0], "-o", str(single), "--alpha", "1.5"]) == 2
    assert "alpha must be in (0, 1]" in capsys.readouterr().err


def _one(tmp_path, domain: str, response: str, fragments: list, variant: str = "halt") -> str:
    case = {"name": "one", "domain": domain, "prompt": "Q?",
            "samples": [{"sample": 0, "response": response, "fragments": fragments}]}
    (t,) = build_targets(load_run(_write_run(tmp_path, case)).rows(), [0.6], variant)
    return t.text


def test_dependent_edge_rules(tmp_path):
    # an unverifiable step before the first error stays: only `incorrect` starts the cut
    assert _one(tmp_path, "math", "x = 2\ny = x^x\nz = 5",
                [["x = 2", "correct"], ["y = x^x", "unverifiable"], ["z = 5", "incorrect"]]
                ) == "x = 2\ny = x^x\nUnsure from Here"
    # a cut mid-line (steps split at "=") puts the marker after a space
    assert _one(tmp_path, "math", "2+2 = 4 = 5", [["2+2 = 4", "correct"], ["= 5", "incorrect"]]
                ) == "2+2 = 4 Unsure from Here"
    # an answer that abstained with no error before its marker keeps that text, marker respelled
    assert _one(tmp_path, "math", "x = 2\nunsure from here. y = 7", [["x = 2", "correct"]]
                ) == "x = 2\nUnsure from Here"
    # the first step wrong: only the marker (both variants start with it)
    assert _one(tmp_path, "code", "def f(:\n    pass", [["def f(:", "incorrect"], ["pass", "incorrect"]]
                ) == "Unsure from Here"
    assert _one(tmp_path, "code", "def f(:\n    pass", [["def f(:", "incorrect"], ["pass", "incorrect"]],
                "addon") == "Unsure from Here\ndef f(:\n    pass"


def test_independent_bullets_keep_their_lines(tmp_path):
    # a bullet list: each item a sentence of its own line, line breaks kept between kept items
    assert _one(tmp_path, "med", "- Fatigue.\n- Fever.\n- Pale skin.",
                [["Fatigue.", "correct"], ["Fever.", "incorrect"], ["Pale skin.", "correct"]]
                ) == "- Fatigue.\n- Pale skin."


def test_code_fence_state_at_the_marker_and_at_the_first_line(tmp_path):
    fence = "```"
    # the model's own marker inside the fence, no error before it: the fence is closed first
    assert _one(tmp_path, "code", f"{fence}python\ndef f():\n    return 1\n# Unsure from Here\n{fence}",
                [["def f():", "correct"], ["return 1", "correct"]]
                ) == f"{fence}python\ndef f():\n    return 1\n{fence}\nUnsure from Here"
    # the first line wrong inside a fence: the add-on reopens the fence for the kept lines
    assert _one(tmp_path, "code", f"Code:\n{fence}py\ndef f(:\n    pass\n{fence}",
                [["def f(:", "incorrect"], ["pass", "incorrect"]], "addon"
                ) == f"Unsure from Here\n{fence}py\ndef f(:\n    pass\n{fence}"


def test_cli_summary_per_alpha(tmp_path, capsys):
    runs = [str(_write_run(tmp_path, c)) for c in CASES]
    assert main(["targets", *runs, "-o", str(tmp_path / "t.jsonl"), "--alpha", "0.4"]) == 0
    err = capsys.readouterr().err
    # alpha 0.4 picks math s2 (1 of 3 kept), code s2 (1 of 3), bio s4 (1 of 2), med s2 (0 of 1, the
    # marker only): 3/4 kept and 9/4 given on average; against n_capable 1/4, 1/3, 1/3, 0
    assert "alpha=0.4: 4 targets, 1 only the marker, 0.8 of 2.2 fragments kept" in err
    assert f"completeness against n_capable {(1 / 4 + 1 / 3 + 1 / 3 + 0) / 4:.2f}" in err
