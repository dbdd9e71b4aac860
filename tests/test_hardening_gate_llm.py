"""Hardening of ``halt-eval gate`` (exit 1 means a regression and nothing else; Markdown from
data is escaped; a candidate with nothing to compare is refused), of the LLM judge's client
(an overall deadline, a reply size cap, an unreachable server fails the run) and of the math
workers (a memory limit)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from halt_eval.cli import main
from halt_runs import scored_row, write_jsonl

RESAMPLES = "200"


def _rows(n: int = 20, labels=("correct", "correct", "incorrect"), task: str = "halt_bio",
          **kw) -> list[dict]:
    return [scored_row(str(i), list(labels), task=task, **kw) for i in range(n)]


def _gate(base: Path, cand: Path, *extra: str) -> int:
    return main(["gate", "--baseline", str(base), "--candidate", str(cand),
                 "--resamples", RESAMPLES, *extra])


@pytest.fixture
def runs(tmp_path):
    base = write_jsonl(tmp_path / "base.jsonl", _rows())
    cand = write_jsonl(tmp_path / "cand.jsonl", _rows())
    return base, cand


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("halt-eval gate: error: ")
    return err[0]


# ------------------------------------------------------------------ gate: exit 2, not 1


@pytest.mark.parametrize("which", ["--markdown", "--json", "GITHUB_STEP_SUMMARY"])
def test_an_unwritable_output_is_exit_2_in_one_line(tmp_path, runs, capsys, monkeypatch, which):
    target = tmp_path / "no_such_dir" / "out.md"
    extra: list[str] = []
    if which == "GITHUB_STEP_SUMMARY":
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    else:
        extra = [which, str(target)]
    assert _gate(*runs, *extra) == 2
    line = _one_error_line(capsys)
    assert str(target) in line and which.lstrip("-") in line.replace("$", "")


def test_an_output_that_is_a_directory_is_exit_2_even_when_the_candidate_regressed(tmp_path, capsys):
    base = write_jsonl(tmp_path / "base.jsonl", _rows(50, ("correct",) * 5))
    cand = write_jsonl(tmp_path / "cand.jsonl", _rows(50, ("correct", "incorrect", "incorrect")))
    assert _gate(base, cand) == 1  # a real regression is 1
    capsys.readouterr()
    assert _gate(base, cand, "--json", str(tmp_path)) == 2
    assert "is a directory" in _one_error_line(capsys)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--seed", "-1", "--seed must lie in"),
    ("--resamples", "1000000000000", "--resamples must lie in"),
    ("--resamples", "5", "--resamples must lie in"),
    ("--confidence", "nan", "--confidence must lie in"),
    ("--confidence", "inf", "--confidence must lie in"),
])
def test_bad_numbers_are_exit_2_in_one_line(runs, capsys, flag, value, message):
    assert _gate(*runs, flag, value) == 2
    assert message in _one_error_line(capsys)


def test_the_json_verdict_records_the_error(tmp_path, runs):
    out = tmp_path / "v.json"
    assert _gate(*runs, "--seed", "-1", "--json", str(out)) == 2
    assert json.loads(out.read_text())["verdict"] == "error"


# --------------------------------------------------- gate: broken candidates are refused


def test_a_candidate_whose_every_answer_gives_nothing_is_exit_2_naming_it(tmp_path, capsys):
    base = write_jsonl(tmp_path / "base.jsonl", _rows())
    empty = [scored_row(str(i), []) for i in range(20)]
    for r in empty:  # nothing given and the needed count unknown: every metric undefined
        r.update(n_desired=None, completeness=None, f1=None)
    cand = write_jsonl(tmp_path / "cand.jsonl", empty)
    assert _gate(base, cand) == 2
    line = _one_error_line(capsys)
    assert "correctness is undefined in every candidate row" in line and "'0'" in line
    assert _gate(cand, base) == 2  # and the same for the baseline
    assert "every baseline row" in _one_error_line(capsys)


@pytest.mark.parametrize("value", [7.5, float("inf"), float("nan"), -0.5])
@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_an_impossible_stored_correctness_is_exit_2_naming_the_row(tmp_path, capsys, value, side):
    good = _rows()
    bad = [dict(r) for r in good]
    bad[3]["correctness"] = value
    files = {"baseline": write_jsonl(tmp_path / "b.jsonl", bad if side == "baseline" else good),
             "candidate": write_jsonl(tmp_path / "c.jsonl", bad if side == "candidate" else good)}
    assert _gate(files["baseline"], files["candidate"]) == 2
    line = _one_error_line(capsys)
    assert ":4:" in line and "correctness" in line


# ---------------------------------------------------------------- gate: escaped Markdown


def test_markdown_from_data_cannot_mention_link_or_inject_html(tmp_path):
    task = "halt_bio <img src=x onerror=alert(1)> @octocat [click](https://evil.example) |x"
    base = write_jsonl(tmp_path / "base.jsonl", _rows(task=task))
    md = tmp_path / "gate.md"
    assert _gate(base, base, "--markdown", str(md), "--baseline-name", "@admin `x` <b>",
                 "--candidate-name", "www.evil.example") == 0
    text = md.read_text()
    # Outside code spans (the task cells): no tag, no mention, no link, no bare URL.
    assert "<img" not in text and "@octocat" not in text
    assert "](https://" not in text and "https://" not in text
    assert "&lt;img" in text  # shown, not run
    # The table keeps its shape: the pipe in the task name is escaped.
    row = next(line for line in text.splitlines() if "| correctness |" in line)
    assert len(re.split(r"(?<!\\)\|", row)) == 8 + 2
    # Run names sit in code spans whose fence outlasts the backticks inside.
    assert "Baseline ``@admin `x` <b>`` vs candidate `www.evil.example`" in text


# ------------------------------------------------------------------------------ LLM judge

import sys
import time

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai import FakeOpenAI, FakeReply  # noqa: E402

from halt_eval.judges.llm import LLMJudge, LLMOptions  # noqa: E402
from halt_eval.judges.llm_client import JudgeUnavailable  # noqa: E402
from halt_eval.types import Fragment, JudgeRequest, Response  # noqa: E402

_VERDICT = json.dumps({"label": "supported", "passage": None, "explanation": "ok"})


def _request() -> JudgeRequest:
    r = Response("1", "bio", "Who?", "Ada was a mathematician.", {"passages": ["Ada was a mathematician."]})
    return JudgeRequest(r, (Fragment(0, "Ada was a mathematician.", (0, 24), "independent"),), None)


def _opts(server, **kw) -> LLMOptions:
    return LLMOptions(backend="openai", base_url=server.base_url, model="fake-judge", **kw)


def test_a_server_trickling_its_reply_is_cut_off_at_the_timeout():
    # One byte every 0.2 s keeps each socket read inside a 1 s socket timeout forever.
    with FakeOpenAI(lambda b: FakeReply(content=_VERDICT, trickle_s=0.2)) as s:
        judge = LLMJudge("claims", options=_opts(s, timeout_s=1.0, max_retries=0))
        t0 = time.perf_counter()
        [j] = judge.judge([_request()])
        took = time.perf_counter() - t0
    assert took < 3, took
    assert {v.reason for v in j.verdicts} == {"llm_timeout"}
    assert "within 1 s" in j.verdicts[0].evidence["llm"]["error"]


def test_a_huge_reply_is_refused_at_the_size_cap():
    with FakeOpenAI(lambda b: FakeReply(content="x" * 3_000_000)) as s:
        judge = LLMJudge("claims", options=_opts(s, max_retries=0, max_reply_bytes=1 << 20))
        [j] = judge.judge([_request()])
    assert {v.reason for v in j.verdicts} == {"llm_error"}
    assert "exceeds the 1,048,576-byte cap" in j.verdicts[0].evidence["llm"]["error"]
    assert judge.stats["errors"] == 1


def test_an_unreachable_judge_raises_naming_the_url_unless_asked_to_go_on():
    url = "http://127.0.0.1:9/v1"
    judge = LLMJudge("claims", options=LLMOptions(backend="openai", base_url=url,
                                                  model="m", max_retries=0))
    with pytest.raises(JudgeUnavailable, match="127.0.0.1:9/v1.*--judge-on-error unverifiable"):
        judge.judge([_request()])
    going_on = LLMJudge("claims", options=LLMOptions(backend="openai", base_url=url, model="m",
                                                     max_retries=0, on_error="unverifiable"))
    [j] = going_on.judge([_request()])
    assert {v.reason for v in j.verdicts} == {"llm_error"}
