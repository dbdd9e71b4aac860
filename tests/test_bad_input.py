"""Bad input gets a clear error that names the record, or a defined verdict; nothing is lost."""

from __future__ import annotations

import json

from conftest import LabelJudge, toy_domain
from halt_eval.io import read_responses
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.types import Judgement, Response, Verdict


def _scorer(judge, kind="independent", **config):
    return Scorer(toy_domain(kind, "fixed:3", judge=judge.name), SentenceSplitter(), judge,
                  ScoreConfig(**config))


class RaisingJudge:
    name, version = "raising", "1"

    def judge(self, batch):
        if any("boom" in r.response.text for r in batch):
            raise RuntimeError("boom inside the judge")
        return LabelJudge().judge(batch)


class MiscountingJudge:
    name, version = "miscounting", "1"

    def judge(self, batch):
        return [Judgement((Verdict("correct", "m@1", "x"),)) for _ in batch]


def test_a_judge_that_raises_on_one_answer_spares_the_others():
    responses = [Response("ok", "bio", "", "A is 1. B is 2.", {"labels": ["correct", "incorrect"]}),
                 Response("bad", "bio", "", "boom. Two.", {"labels": ["correct", "correct"]})]
    ok, bad = _scorer(RaisingJudge()).score(responses)
    assert [v.label for v in ok.verdicts] == ["correct", "incorrect"]
    assert [v.reason for v in bad.verdicts] == ["judge_error", "judge_error"]
    assert bad.n_correct == 0 and "boom inside the judge" in bad.error


def test_a_judge_returning_the_wrong_count_is_caught_per_record():
    s = _scorer(MiscountingJudge()).score([Response("r", "bio", "", "Alpha is 1. Beta is 2. Gamma is 3.", {})])[0]
    assert {v.label for v in s.verdicts} == {"unverifiable"}
    assert "3 fragments" in s.error


def test_a_huge_answer_is_cut_and_its_rest_counted_unverifiable():
    text = "".join(f"A is {i}. " for i in range(20)) + "x" * 1_000_000
    s = _scorer(LabelJudge(), max_answer_chars=100).score(
        [Response("huge", "bio", "", text, {"labels": ["correct"] * 50})])[0]
    assert s.verdicts[-1].reason == "over_length"
    # cut after the last space before the limit: no fact cut in two
    cut = text.rfind(" ", 0, 100) + 1
    assert s.fragments[-1].span == (cut, len(text)) and text[cut - 1] == " "
    assert s.n_given == len(s.verdicts) and s.n_correct == s.n_given - 1


def test_the_length_cut_ends_at_a_line_break_else_a_space_else_the_limit():
    from halt_eval.score import CUT_LOOKBACK_CHARS, length_cut

    assert length_cut("short", 100) == 5
    code = "".join(f"value_{i} = {i} * 2\n" for i in range(100))
    at = length_cut(code, 500)
    assert at <= 500 and code[at - 1] == "\n" and code[at:].startswith("value_")
    assert length_cut("word " * 200, 502) == 500
    assert length_cut("x" * 5000, 100) == 100
    # a break further back than the lookback is not used
    assert length_cut("a\n" + "x" * 5000, CUT_LOOKBACK_CHARS + 10) == CUT_LOOKBACK_CHARS + 10


def test_broken_lines_are_named_and_the_rest_still_parsed(tmp_path):
    path = tmp_path / "answers.jsonl"
    good = json.dumps({"id": "a", "response": "A.", "reference": {}})
    path.write_bytes(b"\n".join([
        good.encode(),
        b'{"id": "b", "response": ',                      # truncated JSON
        json.dumps({"id": "c"}).encode(),                  # no response
        b'{"id": "d", "response": "caf\xff"}',           # bad UTF-8
        json.dumps({"id": "e", "response": "E.", "reference": [1]}).encode(),
    ]) + b"\n")
    recs = list(read_responses(path, "bio"))
    assert [r.response.id if r.response else None for r in recs] == ["a", None, None, "d", None]
    assert recs[1].error.startswith(f"{path}:2: not valid JSON")
    assert recs[2].error == f"{path}:3: field 'response' is missing or not a string (domain 'bio')"
    assert recs[3].warning.startswith(f"{path}:4: invalid UTF-8") and "\ufffd" in recs[3].response.text
    assert "field 'reference' must be an object" in recs[4].error
