"""Fast tests of the LLM judge backend against a fake OpenAI-compatible server on 127.0.0.1.

Always runnable: no model, no network beyond loopback. The real-vLLM tests are in
``test_llm_backend.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI, FakeReply, rule_responder, user_text  # noqa: E402
from llm_run_driver import claims_set  # noqa: E402

from halt_eval.judges.compose import compose  # noqa: E402
from halt_eval.judges.llm import (  # noqa: E402
    LLMFactSplitter,
    LLMJudge,
    add_cli_arguments,
    options_from_args,
    parse_json_object,
)
from halt_eval.judges.llm_client import LLMOptions, make_client  # noqa: E402
from halt_eval.score import Scorer  # noqa: E402
from halt_eval.split import SentenceSplitter  # noqa: E402
from halt_eval.types import Fragment, Judge, Judgement, JudgeRequest, Response, Splitter, Verdict  # noqa: E402

DRIVER = Path(__file__).parent / "llm_run_driver.py"


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def opts(server, **kw) -> LLMOptions:
    return LLMOptions(backend="openai", base_url=server.base_url, model="fake-judge", **kw)


def request(resp: Response) -> JudgeRequest:
    texts = resp.fragments or (resp.text,)
    frags = tuple(Fragment(i, t, (0, 0), "independent" if resp.domain in ("bio", "med")
                           else "dependent") for i, t in enumerate(texts))
    return JudgeRequest(resp, frags)


@dataclass
class ScriptedJudge:
    """An embedded judge that returns fixed verdicts (and optional response-level fields)."""

    verdicts: list[tuple[str, dict]]
    solved: bool | None = None
    evidence: dict | None = None
    coverage: tuple | None = None
    name: str = "scripted"
    version: str = "1"
    calls: int = 0

    def judge(self, batch):
        self.calls += 1
        return [Judgement(tuple(Verdict(label, "scripted@1", "scripted", "", ev)
                                for label, ev in self.verdicts[: len(r.fragments)]),
                          solved=self.solved, coverage=self.coverage,
                          evidence=self.evidence or {}) for r in batch]


# ----------------------------------------------------------------------------- options


def test_options_accept_cli_and_metadata_spellings_and_convert_strings():
    o = LLMOptions.from_mapping({"judge-backend": "openai", "judge_model": "m",
                                 "judge-base-url": "http://127.0.0.1:1/v1", "judge-cache": "/tmp/c",
                                 "llm-split": "true", "max_concurrency": "4", "timeout_s": "2.5",
                                 "judge_temperature": None})
    assert (o.backend, o.model, o.cache_path, o.split, o.max_concurrency, o.timeout_s) == (
        "openai", "m", "/tmp/c", True, 4, 2.5)
    assert o.temperature == 0.0


def test_an_unknown_option_or_backend_names_the_allowed_values():
    with pytest.raises(ValueError, match="known: .*backend"):
        LLMOptions.from_mapping({"judge_bakend": "vllm"})
    with pytest.raises(ValueError, match="one of .*'none', 'vllm', 'openai'.*got 'gpt'"):
        LLMOptions(backend="gpt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot use 'maybe'"):
        LLMOptions.from_mapping({"llm_split": "maybe"})


def test_cli_flags_round_trip_into_options():
    import argparse

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--judge-backend", "vllm", "--judge-model", "/m", "--llm-split",
                              "--judge-cache", "c.sqlite", "--judge-concurrency", "3"])
    o = options_from_args(args)
    assert (o.backend, o.model, o.split, o.cache_path, o.max_concurrency) == (
        "vllm", "/m", True, "c.sqlite", 3)
    assert options_from_args(parser.parse_args([])) == LLMOptions()


def test_backend_none_leaves_the_domain_judge_alone():
    scorer = Scorer.for_domain("math", llm={"backend": "none"})
    try:
        assert scorer.judge.name == "sympy"
    finally:
        scorer.judge.close()


def test_an_unknown_policy_or_misplaced_option_fails_at_construction(server):
    with pytest.raises(ValueError, match="claims, math_first_error, code_first_error; got 'bio'"):
        LLMJudge("bio", options=opts(server))
    with pytest.raises(ValueError, match="coverage applies to the claims policy only"):
        LLMJudge("math_first_error", options=opts(server), coverage=True)


def test_vllm_backend_without_vllm_fails_at_construction_with_the_fix():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed in this interpreter")
    with pytest.raises(RuntimeError, match="setup_vllm.sh"):
        LLMJudge("claims", options=LLMOptions(backend="vllm", model="/m"))
    with pytest.raises(ValueError, match="--judge-model"):
        LLMJudge("claims", options=LLMOptions(backend="vllm"))
    with pytest.raises(ValueError, match="--judge-base-url"):
        LLMJudge("claims", options=LLMOptions(backend="openai"))


def test_the_judge_and_splitter_satisfy_the_core_protocols(server):
    llm = LLMJudge("claims", options=opts(server, split=True))
    judge, splitter = compose(ScriptedJudge([]), llm), LLMFactSplitter(options=opts(server, split=True))
    assert isinstance(judge, Judge) and isinstance(splitter, Splitter)
    assert llm.client is splitter.client  # same options: one cache, one engine
    llm.client.close()
    assert LLMJudge("claims", options=opts(server, split=True)).client is not llm.client


def test_specs_name_the_policy_and_nest_in_the_composition(server):
    judge = compose(ScriptedJudge([]), LLMJudge("claims", options=opts(server), coverage=True))
    spec = judge.spec()
    assert spec["name"] == "scripted+llm" and spec["embedded"] == {"name": "scripted", "version": "1"}
    fb = spec["fallback"]
    assert fb["options"] == {"policy": "claims", "coverage": True}
    assert fb["model"] == "fake-judge" and fb["templates"] == {"verify_claim": "verify_claim@1"}
    assert judge.stats == judge.fallback.stats
    json.dumps(spec)


# ----------------------------------------------------------------------------- parsing


def _parse_cases() -> list[dict]:
    rows = [json.loads(line) for line in
            (Path(__file__).parent / "cases" / "llm_parse.jsonl").read_text().splitlines() if line]
    for i, row in enumerate(rows, 1):
        missing = {"name", "reply", "expected", "why"} - set(row)
        if missing:
            raise ValueError(f"cases/llm_parse.jsonl:{i}: missing {sorted(missing)}")
    return rows


@pytest.mark.parametrize("case", _parse_cases(), ids=lambda c: c["name"])
def test_replies_are_parsed_strictly(case):
    assert parse_json_object(case["reply"]) == case["expected"], case["why"]


@pytest.mark.parametrize("content", [
    "The claim is supported.",
    '{"label": "maybe", "passage": null, "explanation": ""}',
    '{"label": "supported", "passage": 7, "explanation": ""}',
], ids=["prose", "unknown_label", "passage_out_of_range"])
def test_an_unparseable_reply_is_unverifiable_with_the_raw_text_as_evidence(content):
    with FakeOpenAI(lambda b: content) as s:
        judge = LLMJudge("claims", options=opts(s))
        [j] = judge.judge([request(claims_set(1)[0])])
    assert {v.label for v in j.verdicts} == {"unverifiable"}
    assert {v.reason for v in j.verdicts} == {"llm_unparseable"}
    assert j.verdicts[0].evidence["llm"]["reply"] == content


# ----------------------------------------------------------------------------- claims


def test_claims_are_judged_against_the_passages_and_keep_their_evidence(server):
    judge = LLMJudge("claims", options=opts(server))
    [j] = judge.judge([request(claims_set(1)[0])])
    assert [(v.label, v.reason) for v in j.verdicts] == [
        ("correct", "llm_supported"), ("incorrect", "llm_contradicted"),
        ("unverifiable", "llm_not_enough_info")]
    ev = j.verdicts[0].evidence
    assert ev["passages"][0].startswith("Person 0 was born")
    assert ev["llm"]["template"] == "verify_claim@1" and ev["llm"]["model"] == "fake-judge"
    assert j.verdicts[0].judge == "llm@1"
    body = server.requests[0]
    assert body["temperature"] == 0.0 and body["response_format"]["type"] == "json_schema"


def test_a_batch_goes_out_concurrently_and_identical_prompts_are_sent_once():
    with FakeOpenAI(lambda b: FakeReply(content=str(rule_responder(b)), delay_s=0.2)) as s:
        judge = LLMJudge("claims", options=opts(s, max_concurrency=8))
        reqs = [request(r) for r in claims_set(8)]
        t0 = time.perf_counter()
        judge.judge(reqs + reqs[:2])  # two duplicates
        elapsed = time.perf_counter() - t0
    assert judge.stats["requests"] == 24 and len(s.requests) == 24
    assert 4 <= s.max_in_flight <= 8  # concurrent, never past the cap (a loaded CPU may lag)
    assert elapsed < 24 * 0.2 / 3  # far from sequential


def test_with_an_inner_judge_only_its_unverifiable_claims_reach_the_llm(server):
    inner = ScriptedJudge([("correct", {"passages": ["from inner"]}),
                           ("unverifiable", {"passages": [{"text": "Person 0 never worked"}]}),
                           ("incorrect", {})])
    judge = compose(inner, LLMJudge("claims", options=opts(server)))
    [j] = judge.judge([request(claims_set(1)[0])])
    assert len(server.requests) == 1
    assert "[1] Person 0 never worked" in user_text(server.requests[0])
    assert [v.judge for v in j.verdicts] == ["scripted@1", "llm@1", "scripted@1"]
    assert j.verdicts[1].evidence["inner"]["label"] == "unverifiable"


def test_facts_past_the_answers_budget_or_fact_cap_are_not_sent_to_the_llm(server):
    class OverBudget(ScriptedJudge):
        def judge(self, batch):
            return [Judgement((Verdict("unverifiable", "scripted@1", "scripted", "",
                                       {"passages": [{"text": "Person 0 never worked"}]}),)
                              + tuple(Verdict("unverifiable", "scripted@1", "over_budget", "", {})
                                      for _ in r.fragments[1:])) for r in batch]

    judge = compose(OverBudget([]), LLMJudge("claims", options=opts(server)))
    [j] = judge.judge([request(claims_set(1)[0])])
    assert len(server.requests) == 1  # only the first fact, which the budget reached
    assert [v.reason for v in j.verdicts[1:]] == ["over_budget", "over_budget"]
    assert j.verdicts[0].judge == "llm@1"


def test_a_claim_with_no_passage_is_unverifiable_without_a_call(server):
    resp = Response("x", "bio", "Tell me a bio of Z.", "Z was born.", {"topic": "Z"}, ("Z was born.",))
    judge = LLMJudge("claims", options=opts(server))
    [j] = judge.judge([request(resp)])
    assert j.verdicts[0].reason == "llm_no_passages" and not server.requests


def test_med_coverage_asks_whether_the_answer_covers_each_must_have_statement(server):
    resp = Response("m", "med", "What treats X?", "Drug A treats X daily.",
                    {"must_have": ["Drug A treats X.", "Drug B is never used."]},
                    ("Drug A treats X daily.",))
    judge = LLMJudge("claims", options=opts(server), coverage=True)
    [j] = judge.judge([request(resp)])
    assert [v.label for v in j.coverage] == ["correct", "incorrect"]
    assert "Answer:\n[1] Drug A treats X daily." in user_text(server.requests[-1])


# ----------------------------------------------------------------------------- math, code


MATH = Response("m", "math", "Compute.", "", {"answer": "8", "solution": "2 + 2 = 4; 4 * 2 = 8."},
                ("2 + 2 = 4", "4 + 1 = 5", "so 5", "then 5 * 2 = 10", "done"))


def test_math_llm_fills_only_the_steps_the_embedded_judge_left_unverifiable(server):
    inner = ScriptedJudge([("correct", {}), ("unverifiable", {}), ("unverifiable", {}),
                           ("incorrect", {"sympy": "10 != 8"}), ("unverifiable", {})])
    judge = compose(inner, LLMJudge("math_first_error", options=opts(server)))
    [j] = judge.judge([request(MATH)])
    assert [(v.label, v.judge, v.reason) for v in j.verdicts] == [
        ("correct", "scripted@1", "scripted"),
        ("incorrect", "llm@1", "llm_first_error"),
        ("unverifiable", "llm@1", "llm_after_first_error"),
        ("incorrect", "scripted@1", "scripted"),
        ("unverifiable", "scripted@1", "scripted")]
    prompt = user_text(server.requests[0])
    assert "Step 4: then 5 * 2 = 10" in prompt and "Step 5" not in prompt  # up to the inner error
    assert "Reference solution:\n2 + 2 = 4; 4 * 2 = 8." in prompt


def test_math_with_nothing_unverifiable_before_the_first_error_makes_no_call(server):
    inner = ScriptedJudge([("correct", {}), ("incorrect", {}), ("unverifiable", {}),
                           ("unverifiable", {}), ("unverifiable", {})])
    judge = compose(inner, LLMJudge("math_first_error", options=opts(server)))
    [j] = judge.judge([request(MATH)])
    assert not server.requests and all(v.judge == "scripted@1" for v in j.verdicts)


CODE = Response("c", "code", "Write add.", "", {"tests": ["assert add(1, 2) == 3"]},
                ("def add(a, b):", "    c = a - b", "    return c"))


def test_code_llm_relocalises_the_first_wrong_line_of_a_failing_answer(server):
    inner = ScriptedJudge([("correct", {}), ("correct", {}), ("incorrect", {"test": "add(1,2)"})],
                          solved=False, evidence={"failed": 1})
    judge = compose(inner, LLMJudge("code_first_error", options=opts(server)))
    [j] = judge.judge([request(CODE)])
    assert [(v.label, v.reason) for v in j.verdicts] == [
        ("correct", "llm_before_first_error"), ("incorrect", "llm_first_error"),
        ("unverifiable", "llm_after_first_error")]
    assert j.solved is False and j.evidence == {"failed": 1}
    assert j.verdicts[2].evidence["inner"]["evidence"] == {"test": "add(1,2)"}
    assert '"first_failure": {"test": "add(1,2)"}' in user_text(server.requests[0])


def test_code_that_passes_its_tests_never_reaches_the_llm(server):
    inner = ScriptedJudge([("correct", {})] * 3, solved=True)
    judge = compose(inner, LLMJudge("code_first_error", options=opts(server)))
    judge.judge([request(CODE)])
    assert not server.requests


def test_code_keeps_the_embedded_localisation_when_the_llm_sees_no_error():
    inner = ScriptedJudge([("correct", {}), ("incorrect", {"t": 1}), ("unverifiable", {})],
                          solved=False)
    with FakeOpenAI(lambda b: '{"first_error_line": null, "explanation": "fine"}') as s:
        [j] = compose(inner, LLMJudge("code_first_error", options=opts(s))).judge([request(CODE)])
    assert [v.label for v in j.verdicts] == ["correct", "incorrect", "unverifiable"]
    assert j.verdicts[1].evidence["t"] == 1 and j.verdicts[1].evidence["llm"]["parsed"][
        "first_error_line"] is None


# ----------------------------------------------------------------------------- failures


def test_a_retryable_server_error_is_retried_with_backoff_then_succeeds():
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        if calls["n"] <= 2:
            return FakeReply(status=503, content="busy", headers={"Retry-After": "0.01"})
        return rule_responder(body)

    with FakeOpenAI(flaky) as s:
        judge = LLMJudge("claims", options=opts(s, max_concurrency=1))
        resp = claims_set(1)[0]
        [j] = judge.judge([request(Response(resp.id, "bio", resp.prompt, resp.text,
                                            resp.reference, resp.fragments[:1]))])
    assert j.verdicts[0].label == "correct"
    assert judge.stats["retries"] == 2 and judge.stats["requests"] == 1


def test_a_client_error_is_not_retried_and_gives_llm_error():
    with FakeOpenAI(lambda b: FakeReply(status=404, content="no such model")) as s:
        judge = LLMJudge("claims", options=opts(s, max_retries=3))
        [j] = judge.judge([request(claims_set(1)[0])])
    assert {v.reason for v in j.verdicts} == {"llm_error"}
    assert "HTTP 404" in j.verdicts[0].evidence["llm"]["error"]
    assert judge.stats["retries"] == 0 and judge.stats["errors"] == 3


def test_a_server_that_hangs_gives_llm_timeout_after_the_retries():
    with FakeOpenAI(lambda b: FakeReply(content="{}", delay_s=1.0)) as s:
        judge = LLMJudge("claims", options=opts(s, timeout_s=0.1, max_retries=1))
        t0 = time.perf_counter()
        [j] = judge.judge([request(claims_set(1)[0])])
    assert {v.reason for v in j.verdicts} == {"llm_timeout"}
    assert judge.stats["retries"] == 3 and time.perf_counter() - t0 < 3


def test_an_unreachable_server_gives_unverifiable_not_a_crash_when_asked():
    judge = LLMJudge("claims", options=LLMOptions(backend="openai", base_url="http://127.0.0.1:9/v1",
                                               max_retries=0, on_error="unverifiable"))
    [j] = judge.judge([request(claims_set(1)[0])])
    assert {v.label for v in j.verdicts} == {"unverifiable"}
    assert {v.reason for v in j.verdicts} == {"llm_error"}


def test_the_api_key_comes_from_the_environment_and_never_reaches_options(server, monkeypatch):
    monkeypatch.setenv("HALT_JUDGE_API_KEY", "sk-test-123")
    judge = LLMJudge("claims", options=opts(server))
    judge.judge([request(claims_set(1)[0])])
    assert set(server.auth) == {"Bearer sk-test-123"}
    assert "sk-test-123" not in json.dumps(judge.spec())


def test_the_model_is_taken_from_the_server_when_not_given(server):
    judge = LLMJudge("claims", options=LLMOptions(backend="openai", base_url=server.base_url))
    judge.judge([request(claims_set(1)[0])])
    assert {b["model"] for b in server.requests} == {"fake-judge"}


# ----------------------------------------------------------------------------- cache, resume


def test_rescoring_identical_samples_makes_zero_llm_calls_and_gives_identical_rows(server, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    responses = claims_set(5)

    def run():
        judge = LLMJudge("claims", options=opts(server, cache_path=cache))
        rows = [s.to_dict() for s in Scorer.for_domain("bio", judge=judge,
                                                       splitter=SentenceSplitter()).score(responses)]
        judge.client.close()
        return rows, judge.stats

    cold, cold_stats = run()
    warm, warm_stats = run()
    assert cold_stats["requests"] == 15 and warm_stats["requests"] == 0
    assert warm_stats["cache_hits"] == 15 and warm == cold
    rows = sqlite3.connect(cache).execute(
        "SELECT judge, model, template, parsed FROM replies").fetchall()
    assert len(rows) == 15 and {r[:3] for r in rows} == {("llm@1", "fake-judge", "verify_claim@1")}
    assert all(json.loads(r[3])["label"] for r in rows)


def test_the_cache_key_changes_with_model_template_and_sampling(server, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    req = [request(claims_set(1)[0])]
    for o in (opts(server, cache_path=cache), opts(server, cache_path=cache, max_tokens=99)):
        LLMJudge("claims", options=o).judge(req)
    other = LLMOptions(backend="openai", base_url=server.base_url, model="other",
                       cache_path=cache)
    LLMJudge("claims", options=other).judge(req)
    assert len(server.requests) == 9


def test_errors_are_not_cached_so_the_next_run_retries_them(tmp_path):
    cache = str(tmp_path / "c.sqlite")
    with FakeOpenAI(lambda b: FakeReply(status=500, content="down")) as s:
        LLMJudge("claims", options=opts(s, cache_path=cache, max_retries=0)).judge(
            [request(claims_set(1)[0])])
    with FakeOpenAI() as s:
        judge = LLMJudge("claims", options=opts(s, cache_path=cache))
        [j] = judge.judge([request(claims_set(1)[0])])
    assert judge.stats["requests"] == 3 and j.verdicts[0].label == "correct"


def _driver(options: dict, n: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), "--options", json.dumps(options),
                             "--n", str(n), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _rows_in(cache: Path) -> int:
    try:
        return sqlite3.connect(cache).execute("SELECT count(*) FROM replies").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_run_killed_with_kill_9_resumes_without_losing_anything_and_scores_the_same(tmp_path):
    n = 20  # 60 prompts, 2 in flight, 30 ms each: ~1 s, killed around a third of the way
    with FakeOpenAI(lambda b: FakeReply(content=str(rule_responder(b)), delay_s=0.03)) as s:
        base = {"backend": "openai", "base_url": s.base_url, "model": "fake-judge",
                "max_concurrency": 2}
        cache = tmp_path / "killed.sqlite"
        proc = _driver({**base, "cache_path": str(cache)}, n, tmp_path / "killed.json")
        deadline = time.time() + 60
        while _rows_in(cache) < 15 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        survived = _rows_in(cache)
        assert 15 <= survived < 3 * n
        resumed = _driver({**base, "cache_path": str(cache)}, n, tmp_path / "resumed.json")
        clean = _driver({**base, "cache_path": str(tmp_path / "clean.sqlite")}, n,
                        tmp_path / "clean.json")
        assert resumed.wait(60) == 0 and clean.wait(60) == 0
    r = json.loads((tmp_path / "resumed.json").read_text())
    c = json.loads((tmp_path / "clean.json").read_text())
    assert r["stats"]["requests"] == 3 * n - survived  # nothing already judged was asked again
    assert r["stats"]["cache_hits"] == survived
    assert r["rows"] == c["rows"]  # same fragments, verdicts, evidence and scores


# ----------------------------------------------------------------------------- splitter


def test_the_fact_splitter_uses_demos_and_keeps_spans_inside_the_answer(server):
    splitter = LLMFactSplitter(client=make_client(opts(server)))
    text = "Ada was a poet and she lived in Paris. Bo cooks."
    [pieces] = splitter.split([text], [claims_set(1)[0]])
    assert [p.text for p in pieces] == ["Ada was a poet.", "she lived in Paris.", "Bo cooks."]
    assert [p.span for p in pieces] == [(0, 38), (0, 38), (39, 48)]
    assert "Sentence: He made his acting debut" in user_text(server.requests[0])  # first demo
    assert '{"facts": [' in user_text(server.requests[0])


def test_a_sentence_whose_split_cannot_be_parsed_stays_one_piece():
    with FakeOpenAI(lambda b: "Here are the facts: ...") as s:
        splitter = LLMFactSplitter(client=make_client(opts(s)))
        [pieces] = splitter.split(["One fact here. Two."], [claims_set(1)[0]])
    assert [(p.text, p.span) for p in pieces] == [("One fact here.", (0, 14)), ("Two.", (15, 19))]


# ------------------------------------------------------- with the real embedded judges


def _scorer(domain: str, server) -> Scorer:
    try:
        return Scorer.for_domain(domain, llm=opts(server).to_dict())
    except (RuntimeError, ImportError) as e:  # e.g. no bubblewrap on this machine
        pytest.skip(f"embedded {domain} judge unavailable: {e}")


def test_the_llm_composed_over_the_sympy_judge_asks_only_about_steps_it_could_not_check(server):
    scorer = _scorer("math", server)
    resp = Response("m1", "math", "Ann has 2 apples and buys 2. Doubled?",
                    "Ann had 17 apples last week.\n2 + 2 = 5\n"
                    "So the answer is \\boxed{10}.",
                    {"answer": "8", "solution": "2 + 2 = 4, doubled is 8."})
    [scored] = scorer.score([resp])
    scorer.judge.close()
    labels = [(v.label, v.judge.split("@")[0]) for v in scored.verdicts]
    assert labels[1] == ("incorrect", "sympy")  # the symbolic check stands
    assert labels[0] == ("correct", "llm")  # the LLM decided the uncheckable step before it
    assert len(server.requests) == 1
    assert "Step 3" not in user_text(server.requests[0])  # nothing past sympy's first error


def test_the_llm_composed_over_the_sandbox_judge_relocalises_a_failing_answer(server):
    scorer = _scorer("code", server)
    resp = Response("c1", "code", "Write add(a, b).",
                    "```python\ndef add(a, b):\n    c = a - b\n    return c\n```",
                    {"tests": ["assert add(1, 2) == 3"]})
    [scored] = scorer.score([resp])
    assert [v.label for v in scored.verdicts] == ["correct", "incorrect", "incorrect"]
    assert scored.verdicts[1].reason == "llm_first_error"
    assert "inner" in scored.verdicts[1].evidence and scored.solved is False
    assert '"first_failure"' in user_text(server.requests[0])


def test_an_engine_that_fails_to_start_gives_llm_error_once_not_a_crash(monkeypatch, tmp_path):
    import types

    from halt_eval.judges import llm_client

    starts = []

    def broken_llm(**kwargs):
        starts.append(kwargs)
        raise RuntimeError("no memory for the KV cache")

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=broken_llm))
    monkeypatch.setattr(llm_client.importlib.util, "find_spec", lambda name: object())
    judge = LLMJudge("claims", options=LLMOptions(backend="vllm", model="/m", batch_size=2))
    [a] = judge.judge([request(claims_set(1)[0])])
    [b] = judge.judge([request(claims_set(2)[1])])
    assert len(starts) == 1
    assert {v.reason for v in a.verdicts + b.verdicts} == {"llm_error"}
    assert "failed to start" in a.verdicts[0].evidence["llm"]["error"]


def test_med_coverage_ignores_what_follows_the_abstention_marker(server):
    text = "Drug A treats X daily. Unsure from here. Drug B is never used."
    resp = Response("m", "med", "What treats X?", text, {"must_have": ["Drug A treats X."]},
                    ("Drug A treats X daily.",))
    frags = (Fragment(0, "Drug A treats X daily.", (0, 22), "independent"),)
    judge = LLMJudge("claims", options=opts(server), coverage=True)
    judge.judge([JudgeRequest(resp, frags, marker_offset=23)])
    assert "Drug B" not in user_text(server.requests[-1])
