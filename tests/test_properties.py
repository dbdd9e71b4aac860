"""Invariants of the metric contract and of the serialized row, checked with hypothesis."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import LabelJudge
from halt_eval.domains import Domain
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter, cut_at_marker
from halt_eval.types import Response

labels = st.lists(st.sampled_from(["correct", "incorrect", "unverifiable"]), min_size=0, max_size=12)
kinds = st.sampled_from(["independent", "dependent"])
words = st.text(alphabet="abcdefgh xyz", min_size=1, max_size=12).map(str.strip).filter(bool)


def _score(kind, labs, tail="", k=5, solved=None):
    text = " ".join(f"Fact {i} is {w}." for i, w in enumerate(["a"] * len(labs)))
    text = text + (" Unsure from Here. " + tail if tail else "")
    spec = Domain("bio", "test", kind, "sentence", "sentences", "labels", f"fixed:{k}")
    ref = {"labels": labs + ["correct"] * 20, "solved": solved}
    return Scorer(spec, SentenceSplitter(), LabelJudge(), ScoreConfig()).score(
        [Response("r", "bio", "", text, ref)])[0]


@settings(max_examples=150, deadline=None)
@given(kinds, labels, st.integers(1, 15), st.sampled_from([None, True, False]))
def test_metrics_lie_in_the_unit_interval_and_f1_between_the_two(kind, labs, k, solved):
    s = _score(kind, labs, k=k, solved=solved)
    for value in (s.correctness, s.completeness, s.f1):
        assert value is None or 0.0 <= value <= 1.0
    if s.correctness is not None and s.completeness is not None:
        lo, hi = sorted((s.correctness, s.completeness))
        assert lo - 1e-12 <= s.f1 <= hi + 1e-12


@settings(max_examples=100, deadline=None)
@given(kinds, labels, words)
def test_text_after_the_marker_never_changes_a_score(kind, labs, tail):
    with_tail = _score(kind, labs, tail=tail + ". More words here. And here.")
    without = _score(kind, labs, tail="x")
    assert (with_tail.n_given, with_tail.n_correct, with_tail.f1) == (without.n_given, without.n_correct, without.f1)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_spans_are_ordered_and_inside_the_answer(text):
    cut = cut_at_marker(text)
    pieces = SentenceSplitter().split([cut.text], [None])[0]
    last = 0
    for p in pieces:
        a, b = p.span
        assert last <= a <= b <= len(cut.text)
        assert p.text == cut.text[a:b]
        last = b


@settings(max_examples=100, deadline=None)
@given(labels, st.randoms())
def test_reordering_independent_fragments_changes_nothing(labs, rnd):
    shuffled = list(labs)
    rnd.shuffle(shuffled)
    a, b = _score("independent", labs), _score("independent", shuffled)
    assert (a.n_given, a.n_correct, a.correctness, a.completeness) == (b.n_given, b.n_correct, b.correctness, b.completeness)


@settings(max_examples=50, deadline=None)
@given(kinds, labels)
def test_the_same_input_gives_the_same_verdicts(kind, labs):
    assert _score(kind, labs).to_dict() == _score(kind, labs).to_dict()


# ------------------------------------------------------------------ the serialized row

from halt_eval.types import Fragment, ScoredResponse, Verdict  # noqa: E402

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8),
                         st.floats(allow_nan=False, allow_infinity=False))
evidence = st.dictionaries(st.text(max_size=6), json_scalars, max_size=3)
verdicts = st.builds(Verdict, st.sampled_from(["correct", "incorrect", "unverifiable"]),
                     st.text(max_size=8), st.text(max_size=8), st.text(max_size=12), evidence)


@st.composite
def scored_responses(draw):
    text = draw(st.text(max_size=60))
    n = draw(st.integers(0, 5))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2 * n, max_size=2 * n)))
    kind = draw(kinds)
    frags = tuple(Fragment(i, draw(st.text(max_size=10)), (cuts[2 * i], cuts[2 * i + 1]), kind)
                  for i in range(n))
    response = Response(draw(words), draw(st.sampled_from(["bio", "math", "toy"])), draw(st.text(max_size=10)),
                        text, draw(evidence), task=draw(st.sampled_from(["", "halt_bio"])))
    return ScoredResponse(
        response, frags, tuple(draw(verdicts) for _ in frags), draw(st.booleans()),
        n_desired=draw(st.none() | st.integers(0, 8)), solved=draw(st.none() | st.booleans()),
        coverage=draw(st.none() | st.lists(verdicts, max_size=3).map(tuple)),
        marker_offset=draw(st.none() | st.integers(0, len(text))), evidence=draw(evidence),
        error=draw(st.none() | st.text(max_size=8)),
        rules_version=draw(st.sampled_from(["1", "2", "3"])),
        judge_spec=draw(st.fixed_dictionaries({"name": words, "version": st.just("1"), "options": evidence})),
        sample=draw(st.none() | st.integers(0, 3)),
    )


@settings(max_examples=150, deadline=None)
@given(scored_responses())
def test_a_row_reads_back_as_the_same_scored_response(scored):
    row = json.loads(json.dumps(scored.to_dict()))
    back = ScoredResponse.from_dict(row)
    assert back == scored
    assert back.to_dict() == row
