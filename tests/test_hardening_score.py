"""Hardening of `halt-eval score` (issue 14): bounded time on any answer, options checked
before any output is opened, output no input can crash, a torn line repaired on resume,
duplicate ids named, one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import time

from conftest import LabelJudge, toy_domain
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter, sentence_spans
from halt_eval.types import Response


# -- item 1: linear-time splitting, the length cap before anything else ---------------------

def test_sentence_splitting_is_linear_on_a_run_of_initials():
    # Every "A." is an initial, so nothing ends a sentence; the abbreviation test used to scan
    # from the sentence start at each full stop (quadratic: 20,000 of them took minutes).
    text = "A. " * 33_000
    t = time.perf_counter()
    spans = sentence_spans(text)
    assert time.perf_counter() - t < 3.0
    assert spans == [(0, len(text.rstrip()))]


def test_abbreviations_still_hold_a_sentence_together():
    text = "Dr. Smith met Mr. Jones approx. at noon. Then J. R. Tolkien left. It rained."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Dr. Smith met Mr. Jones approx. at noon.", "Then J. R. Tolkien left.", "It rained."]


class RecordingSplitter(SentenceSplitter):
    def __init__(self):
        self.lengths = []

    def split(self, texts, responses):
        self.lengths += [len(t) for t in texts]
        return super().split(texts, responses)


def test_n_desired_without_a_reference_splits_only_the_capped_answer():
    splitter = RecordingSplitter()
    scorer = Scorer(toy_domain("independent", "reference", judge="labels"), splitter, LabelJudge(),
                    ScoreConfig(max_answer_chars=100))
    text = "Alpha is one. " * 5 + "B. " * 2_000_000  # 6 MB, no reference solution
    s = scorer.score([Response("big", "bio", "", text, {"labels": ["correct"] * 10})])[0]
    assert max(splitter.lengths) <= 100
    # the capped part's sentences plus the one over-length fragment, as in n_given
    assert s.n_desired == s.n_given and s.verdicts[-1].reason == "over_length"


# -- `halt-eval score` end to end -------------------------------------------------------------

import fcntl  # noqa: E402

import pytest  # noqa: E402

from halt_eval.cli import main  # noqa: E402

ROW = {"id": "g1", "prompt": "p", "response": "1 + 1 = 2. \\boxed{2}", "reference": {"answer": "2"}}
KEEP = '{"kept": "from an earlier run"}\n'


def _input(tmp_path, rows, name="in.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _score(*argv):
    return main(["score", *map(str, argv)])


# item 4/5: options checked before the output is opened ----------------------------------------

@pytest.mark.parametrize("bad, says", [
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    (["--n-desired", "fixed:abc"], "expected fixed:K with an integer K"),
    (["--n-desired", "fixed:-3"], "K must be at least 1"),
    (["--n-desired", "fixed:0"], "K must be at least 1"),
    (["--n-desired", "everything"], "--n-desired must be reference, reference_recall, fixed:K or capable"),
    (["--marker", "!!!"], "--marker: abstention marker '!!!' has no words"),
    (["--answer-budget", "0"], "--answer-budget must be a number of seconds above 0 or 'off', got '0'"),
    (["--answer-budget", "-2"], "--answer-budget must be a number of seconds above 0 or 'off'"),
    (["--answer-budget", "nan"], "--answer-budget must be a number of seconds above 0 or 'off'"),
    (["--answer-budget", "inf"], "--answer-budget must be a number of seconds above 0 or 'off'"),
    (["--answer-budget", "soon"], "--answer-budget must be a number of seconds above 0 or 'off'"),
])
def test_a_bad_option_is_refused_before_the_output_is_touched(tmp_path, capsys, bad, says):
    inp, out = _input(tmp_path, [ROW]), tmp_path / "out.jsonl"
    out.write_text(KEEP)
    assert _score(inp, "--domain", "math", "-o", out, *bad) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert out.read_text() == KEEP


def test_the_input_as_output_is_refused_and_kept(tmp_path, capsys):
    inp = _input(tmp_path, [ROW])
    inp.write_text(inp.read_text() + "not json\n")
    before = inp.read_text()
    for extra in ([], ["--resume"]):
        assert _score(inp, "--domain", "math", "-o", tmp_path / "." / "in.jsonl", *extra) == 2
        assert "is also an input" in capsys.readouterr().err
    assert inp.read_text() == before


def test_a_second_run_on_a_locked_output_is_refused(tmp_path, capsys):
    inp, out = _input(tmp_path, [ROW]), tmp_path / "out.jsonl"
    out.write_text(KEEP)
    with out.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert _score(inp, "--domain", "math", "-o", out) == 2
    assert "is being written by another halt-eval run" in capsys.readouterr().err
    assert out.read_text() == KEEP


# item 2: output no input can crash ------------------------------------------------------------

def test_a_lone_surrogate_is_escaped_with_a_warning_and_every_row_written(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"id": "s\\ud800", "response": "1 + 1 = 2. \\udfff", "reference": {"answer": "2"}}\n'
                   + json.dumps(ROW) + "\n")
    assert _score(inp, "--domain", "math", "-o", out) == 0
    rows = [json.loads(line) for line in out.read_bytes().decode("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["s\ud800", "g1"]  # the escape reads back as the same id
    assert "lone surrogate" in capsys.readouterr().err


# item 3: --resume repairs a torn last line ----------------------------------------------------

def test_resume_cuts_a_torn_last_line_and_scores_its_record_again(tmp_path, capsys):
    rows = [ROW, dict(ROW, id="g2")]
    inp, out = _input(tmp_path, rows), tmp_path / "out.jsonl"
    assert _score(_input(tmp_path, rows[:1], "first.jsonl"), "--domain", "math", "-o", out) == 0
    whole = out.read_text()
    out.write_text(whole + whole[:40])  # a run cut off while writing g2's row
    assert _score(inp, "--domain", "math", "-o", out, "--resume") == 0
    assert "the last line was incomplete (40 bytes" in capsys.readouterr().err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["g1", "g2"]


# item 8: duplicate ids ------------------------------------------------------------------------

def test_a_duplicate_id_is_named_with_both_lines_and_exit_1(tmp_path, capsys):
    inp, out = _input(tmp_path, [ROW, dict(ROW, id="g2"), ROW]), tmp_path / "out.jsonl"
    assert _score(inp, "--domain", "math", "-o", out) == 1
    assert f"{inp}:3: duplicate id 'g1', first at {inp}:1" in capsys.readouterr().err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["g1", "g2"]


# item 9: one-line errors, exit 2 --------------------------------------------------------------

def test_a_directory_output_or_summary_is_one_line_exit_2(tmp_path, capsys):
    inp = _input(tmp_path, [ROW])
    assert _score(inp, "--domain", "math", "-o", tmp_path) == 2
    assert "is a directory" in capsys.readouterr().err
    assert _score(inp, "--domain", "math", "-o", tmp_path / "o.jsonl", "--summary-json", tmp_path) == 2
    err = capsys.readouterr().err
    assert "--summary-json" in err and "is a directory" in err and "Traceback" not in err


def test_an_unwritable_output_is_one_line_exit_2(tmp_path, capsys):
    # (a read-only directory would do too, but the tests may run as root)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert _score(_input(tmp_path, [ROW]), "--domain", "math", "-o", blocker / "o.jsonl") == 2
    err = capsys.readouterr().err
    assert f"cannot write -o {blocker / 'o.jsonl'}" in err and "Traceback" not in err


def test_an_unknown_judge_option_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    assert _score(_input(tmp_path, [ROW]), "--domain", "math", "-o", out, "--judge-arg", "bogus=1") == 2
    err = capsys.readouterr().err
    assert "judge does not take this option" in err and "bogus" in err and "Traceback" not in err
    assert not out.exists()


def test_an_empty_input_says_so(tmp_path, capsys):
    inp, out = tmp_path / "empty.jsonl", tmp_path / "o.jsonl"
    inp.write_text("\n  \n")
    assert _score(inp, "--domain", "math", "-o", out) == 2
    assert f"no records in {inp}" in capsys.readouterr().err


# item 1: a time budget per answer for splitting and judging -----------------------------------

from halt_eval import budget as budget_module  # noqa: E402


class FakeTime:
    """``halt_eval.budget``'s clocks, moved on only by the work the tests make "slow"."""

    def __init__(self, monkeypatch):
        self.t = 0.0
        for kind in budget_module.CLOCKS:
            monkeypatch.setitem(budget_module.CLOCKS, kind, lambda: self.t)

    def slow(self, fn, seconds=1.0):
        def wrapped(*a, **k):
            self.t += seconds
            return fn(*a, **k)
        return wrapped


class AllCorrect:
    name, version = "all_correct", "1"

    def judge(self, batch):
        from halt_eval.types import Judgement, Verdict

        return [Judgement(tuple(Verdict("correct", "all_correct@1", "given") for _ in r.fragments))
                for r in batch]


LONG_BIO = " ".join(f"Ada Lovelace wrote note number {i} in {1800 + i}." for i in range(60))
SHORT_BIO = "Ada Lovelace was a mathematician. She was born in London."


def _bio_scorer(splitter, judge, seconds, clock="cpu"):
    return Scorer(toy_domain(n_desired="fixed:5", splitter="atomic_facts", judge=judge.name), splitter,
                  judge, ScoreConfig(answer_budget=seconds, budget_clock=clock))


def _bio(rid, text):
    return Response(rid, "bio", "", text, {"topic": "Ada Lovelace"})


@pytest.fixture(scope="module")
def atomic():
    from halt_eval.judges.atomic_facts import AtomicFactSplitter

    return AtomicFactSplitter(topic_is_person=True)


@pytest.mark.parametrize("kind", ["cpu", "wall"])
def test_splitting_past_the_budget_leaves_one_over_budget_fragment_and_spares_the_batch(
        atomic, monkeypatch, kind):
    unlimited = _bio_scorer(atomic, AllCorrect(), None).score([_bio("long", LONG_BIO), _bio("short", SHORT_BIO)])
    clock = FakeTime(monkeypatch)
    # every parse of a batch of sentences "takes" a second; splitting may use half of 4 s
    monkeypatch.setattr(atomic, "_nlp", type("Slow", (), {"pipe": staticmethod(clock.slow(atomic._nlp.pipe))})())
    long, short = _bio_scorer(atomic, AllCorrect(), 4.0, kind).score([_bio("long", LONG_BIO), _bio("short", SHORT_BIO)])
    last = long.verdicts[-1]
    assert (last.label, last.reason, last.judge) == ("unverifiable", "over_budget", "halt_eval")
    assert f"4-second budget ({kind} time) ran out" in last.explanation
    cut = long.fragments[-1].span
    assert cut[1] == len(LONG_BIO) and cut[0] == LONG_BIO.index("Ada Lovelace wrote note number 16 ")
    # two batches of 8 sentences were split and judged, as they are without a budget
    judged = [f.text for f in long.fragments[:-1]]
    assert judged == [f.text for f in unlimited[0].fragments if f.span[1] <= cut[0]] and len(judged) >= 16
    assert all(v.label == "correct" for v in long.verdicts[:-1])
    assert long.evidence["budget"] == {"seconds": 4.0, "clock": kind, "spent_s": 2.0,
                                       "stops": [{"stage": "split", "at": cut[0], "span": list(cut)}]}
    # the judge finds the splitter's record (skipped text) for the fragments it is given
    from halt_eval.judges.atomic_facts import split_record

    assert split_record(LONG_BIO, [f.span for f in long.fragments[:-1]]) is not None
    # the other answer of the batch has its own clock: the same row as without a budget
    assert short.to_dict() == unlimited[1].to_dict() and "budget" not in short.evidence


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    from halt_eval.judges.retrieval_claims import RetrievalJudge

    corpus = tmp_path_factory.mktemp("corpus") / "wiki.jsonl"
    corpus.write_text(json.dumps({"title": "Ada Lovelace", "text": (
        "Ada Lovelace was an English mathematician. She was born in London in 1815. "
        "She wrote notes on the Analytical Engine.")}) + "\n")
    return RetrievalJudge(corpus=corpus)


def test_judging_past_the_budget_leaves_the_rest_over_budget_and_spares_the_batch(
        retrieval, monkeypatch):
    splitter = SentenceSplitter()
    batch = [_bio("long", LONG_BIO), _bio("short", SHORT_BIO)]
    unlimited = _bio_scorer(splitter, retrieval, None).score(batch)
    clock = FakeTime(monkeypatch)
    # every chunk of facts "takes" a second: 4 chunks of 8 fit in the 4 s budget
    monkeypatch.setattr(retrieval.verifier, "features", clock.slow(retrieval.verifier.features))
    long, short = _bio_scorer(splitter, retrieval, 4.0).score(batch)
    reasons = [v.reason for v in long.verdicts]
    assert len(reasons) == 60 and reasons[32:] == ["over_budget"] * 28
    assert all(v.label == "unverifiable" and "time budget ran out" in v.explanation for v in long.verdicts[32:])
    assert [v.label for v in long.verdicts[:32]] == [v.label for v in unlimited[0].verdicts[:32]]
    assert long.evidence["budget"]["stops"] == [{"stage": "judge", "unjudged": 28}]
    assert long.evidence["budget"]["spent_s"] == 4.0
    # one chunk for the short answer, judged in full
    assert [v.label for v in short.verdicts] == [v.label for v in unlimited[1].verdicts]
    assert "over_budget" not in {v.reason for v in short.verdicts} and "budget" not in short.evidence


def test_med_coverage_is_judged_first_and_the_facts_get_what_is_left_of_the_budget(monkeypatch):
    from halt_eval.judges.retrieval_claims import RetrievalJudge

    judge = RetrievalJudge(coverage=True, knowledge=None)
    ref = {"must_have": ["Ibuprofen can upset the stomach.", "Take ibuprofen with food."],
           "nice_to_have": ["Ibuprofen is an NSAID."]}
    text = " ".join(f"Ibuprofen dose number {i} is {100 + i} mg." for i in range(40))
    response = Response("med-long", "med", "", text, ref)
    scorer = Scorer(toy_domain(n_desired="fixed:5", splitter="sentences", judge=judge.name),
                    SentenceSplitter(), judge, ScoreConfig(answer_budget=4.0))
    clock = FakeTime(monkeypatch)
    # every call of the features (coverage: one; facts: one per chunk of 8) "takes" a second
    monkeypatch.setattr(judge.verifier, "features", clock.slow(judge.verifier.features))
    [row] = scorer.score([response])
    assert row.coverage is not None and len(row.coverage) == 2
    assert "over_budget" not in {v.reason for v in row.coverage}
    # coverage took the first second, three chunks of facts the other three: nothing after
    assert row.evidence["budget"]["spent_s"] == 4.0
    assert row.evidence["budget"]["stops"] == [{"stage": "judge", "unjudged": 40 - 24}]
    assert [v.reason for v in row.verdicts[24:]] == ["over_budget"] * 16


def test_no_budget_no_clock_a_judge_outside_a_scorer_is_never_stopped(retrieval):
    from halt_eval.types import Fragment, JudgeRequest

    text = LONG_BIO
    frags = tuple(Fragment(i, f"Ada Lovelace wrote note number {i}.", (0, 1), "independent") for i in range(20))
    judgement = retrieval.judge([JudgeRequest(_bio("x", text), frags)])[0]
    assert "over_budget" not in {v.reason for v in judgement.verdicts}


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_score_config_refuses_a_bad_budget(bad):
    with pytest.raises(ValueError, match="answer budget must be"):
        ScoreConfig(answer_budget=bad)
    with pytest.raises(ValueError, match="budget clock must be one of cpu, wall"):
        ScoreConfig(budget_clock="sundial")


def test_score_records_a_budget_that_fired_and_counts_it_in_the_summary(tmp_path, capsys):
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_text(json.dumps({"title": "Ada Lovelace", "text": "Ada Lovelace was a mathematician."}) + "\n")
    rows = [{"id": "long", "response": LONG_BIO, "reference": {"topic": "Ada Lovelace"}}]
    inp, out, summary = _input(tmp_path, rows), tmp_path / "out.jsonl", tmp_path / "s.json"
    # a budget no splitting can keep: nothing of the answer is split or judged
    assert _score(inp, "--domain", "bio", "--corpus", corpus, "-o", out, "--summary-json", summary,
                  "--answer-budget", "1e-9") == 0
    row = json.loads(out.read_text())
    assert [(f["verdict"], f["reason"]) for f in row["fragments"]] == [("unverifiable", "over_budget")]
    assert row["fragments"][0]["span"] == [0, len(LONG_BIO)]
    assert row["evidence"]["budget"]["seconds"] == 1e-9
    assert row["evidence"]["budget"]["stops"][0]["stage"] == "split"
    assert json.loads(summary.read_text())["over_budget_answers"] == 1
    assert "1 answer(s) ran out of their 1e-09-second budget (cpu time)" in capsys.readouterr().out


class RecordingJudge(AllCorrect):
    def __init__(self):
        self.seen = []

    def judge(self, batch):
        self.seen += [(len(r.response.text), len(r.text)) for r in batch]
        return super().judge(batch)


def test_the_judge_sees_only_the_capped_answer_and_the_row_keeps_all_of_it():
    # The med judge's coverage check read the uncut answer (req.text): 5 MB indexed whole.
    judge = RecordingJudge()
    scorer = Scorer(toy_domain(), SentenceSplitter(), judge, ScoreConfig(max_answer_chars=100))
    text = "Alpha is one. " * 5 + "B. " * 2_000_000
    s = scorer.score([Response("big", "bio", "", text, {}), Response("small", "bio", "", "Alpha is one.", {})])
    cut = text.rfind(" ", 0, 100) + 1  # the last space before the limit
    assert judge.seen == [(cut, cut), (13, 13)]
    assert s[0].response.text == text and s[0].to_dict()["response"] == text
    assert s[0].verdicts[-1].reason == "over_length" and s[0].fragments[-1].span == (cut, len(text))
