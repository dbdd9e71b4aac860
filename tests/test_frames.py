"""The DataFrame view of scored rows."""

from __future__ import annotations

import math

from conftest import LabelJudge, toy_domain
from halt_eval.frames import to_pandas
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.types import Response


def _scored():
    scorer = Scorer(toy_domain(), SentenceSplitter(), LabelJudge(), ScoreConfig())
    return scorer.score([
        Response("a", "toy", "", "One. Two.", {"labels": ["correct", "incorrect"]}, task="t"),
        Response("b", "toy", "", "Unsure from Here.", {}, task="t"),
    ])


def test_one_row_per_answer_with_undefined_correctness_as_nan():
    df = to_pandas(_scored())
    assert list(df["id"]) == ["a", "b"]
    assert df.loc[0, "correctness"] == 0.5 and math.isnan(df.loc[1, "correctness"])
    assert df["correctness"].mean() == 0.5  # pandas skips the undefined value, as the catalogue does
    assert bool(df.loc[1, "abstained"]) and df.loc[0, "rules_version"]


def test_one_row_per_fragment_with_its_verdict():
    df = to_pandas(_scored(), fragments=True)
    assert list(zip(df["id"], df["index"], df["verdict"])) == [("a", 0, "correct"), ("a", 1, "incorrect")]
