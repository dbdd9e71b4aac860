"""The embedded claims judge: bm25s retrieval, then MiniLM, lexical and consistency checks.

Runs offline on a CPU. For each fragment (an atomic fact):

1. **Retrieve** (``retrieve``): the reference is cut into passages of about
   ``CHUNK_WORDS`` words, sentence-aligned, overlapping by about ``CHUNK_OVERLAP_WORDS``;
   bm25s ranks them and the ``top_k`` best are the evidence. Where the passages come from:

   - bio, ``reference["passages"]``: those texts;
   - bio, no passages: the configured corpus (FActScore's SQLite ``documents(title, text)``
     or a JSONL of ``{title, text}``); the topic's own documents when its title is there
     (as FActScore does), else a search of the whole corpus;
   - bio, no passages and no corpus: the topic's Wikipedia page through the MediaWiki API
     (``halt_eval.judges.wikipedia``: ``$HALT_WIKIPEDIA_API``, cached on disk; ``off`` turns it
     off); unreachable and not cached: ``unverifiable`` / ``no_knowledge_source``;
   - med: ``must_have`` and ``nice_to_have`` statements, one passage each, and the chunked
     reference ``answer``.

   Each distinct passage set is indexed once and kept (``MAX_CACHED_INDEXES``).
2. **Verify** (``Verifier``): features of the fact against the evidence sentences: best
   MiniLM cosine to a sentence and to a passage, content-word recall in the best sentence
   and in all evidence, bm25 score, numbers and names of the fact missing from the evidence,
   negation mismatch with the best sentence, fact length. A logistic regression over them
   (``judges/models/claims_lr.json``, trained by ``benchmarks/train_claims_judge.py`` on the
   dev halves) gives ``p_supported``.
3. **Decide** (``REASONS`` lists every code):

   - ``correct`` / ``supported``: ``p_supported`` at or above the profile's threshold;
   - ``incorrect`` / ``contradicted`` (checked first): a close evidence sentence (cosine at
     least ``CONTRADICTION_MIN_COS`` or ``CONTRADICTION_MIN_OVERLAP`` of the fact's content
     words) states another number or year while the fact's number is nowhere in the
     evidence; or the best evidence sentence, at cosine ``POLARITY_MIN_COS`` or more, has
     the opposite polarity; or an entity conflict (``entity_conflicts``);
   - ``incorrect`` / ``not_supported``: bio only, below threshold while the reference is the
     topic's own text (given passages or the topic's documents): the reference should cover
     a fact about its topic, as in FActScore;
   - ``unverifiable`` / ``not_found``: bio, below threshold, evidence from a corpus search
     because the topic has no document;
   - ``unverifiable`` / ``not_in_reference``: med, below threshold: K-QA's physician
     statements are not exhaustive, so absence is not error;
   - ``unverifiable`` / ``no_knowledge_source``: bio, no passages, no corpus, and Wikipedia
     cannot be reached for a page not in its cache (the reason says how to get a source);
   - ``unverifiable`` / ``no_reference``, ``bad_reference``, ``empty_fragment``: the input
     could not be judged; ``judge_error``: an unexpected failure on this answer (the
     message is the explanation).

Medicine completeness (``Judgement.coverage``): one verdict per ``must_have`` statement,
``correct`` / ``entailed`` when the answer supports it (same features, the statement as the
claim and the answer's own sentences as evidence, profile ``entail``), ``incorrect`` /
``contradicted`` or ``incorrect`` / ``not_covered`` otherwise. This is K-QA's
comprehensiveness.

The seam for an LLM verifier: ``retrieve(fragments, reference, corpus=..., top_k=...)``
returns the evidence for each fragment and does not need the embedding model.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from halt_eval.budget import answer_clock
from halt_eval.judges.atomic_facts import MAX_FACTS_PER_ANSWER
from halt_eval.judges.minilm import BLAS_THREADS, MiniLM
from halt_eval.split import sentence_spans
from halt_eval.types import Judgement, JudgeRequest, Verdict

#: Passage length, in words; a sentence is never cut.
CHUNK_WORDS = 100
#: Words of the previous passage repeated at the start of the next one.
CHUNK_OVERLAP_WORDS = 30
#: Passages retrieved per fact.
TOP_K = 5
#: Indexed passage sets kept in memory (topic pages, per-question references).
MAX_CACHED_INDEXES = 256
#: Sentence embeddings kept in memory (384 floats each, ~1.5 kB).
MAX_CACHED_EMBEDDINGS = 100_000
#: Below this cosine to the best evidence sentence, a clash of numbers or polarity is
#: taken for a different statement, not a contradiction.
CONTRADICTION_MIN_COS = 0.75
#: Or at least this share of the fact's content words in that sentence.
CONTRADICTION_MIN_OVERLAP = 0.6
#: A polarity clash (a negation in the fact or in its best evidence sentence, not both) is a
#: contradiction only when that sentence is this close (cosine): "if you miss a dose, take it
#: as soon as you remember" against "an extra dose should not be taken" is no contradiction.
#: At the ``CONTRADICTION_MIN_COS`` bar 6 of the 9 K-QA rows it flagged were entailed ones.
POLARITY_MIN_COS = 0.9
#: A corpus with more documents than this is not indexed whole (FActScore's Wikipedia
#: has millions); a topic missing from it is then unverifiable.
MAX_GLOBAL_INDEX_DOCS = 200_000
#: Two words whose MiniLM cosine reaches this count as the same word for ``soft_covered``.
SOFT_MATCH_COS = 0.7
#: Facts judged per answer; the rest are ``unverifiable`` / ``over_budget`` (the splitter
#: stops at the same count and gives the rest of the answer as one last piece).
MAX_JUDGED_FACTS = MAX_FACTS_PER_ANSWER
#: Characters of each passage kept in a verdict's evidence.
EVIDENCE_CHARS = 300

#: The shipped logistic-regression parameters (package data).
_MODEL_FILE = resources.files("halt_eval.judges") / "models" / "claims_lr.json"

Profile = Literal["bio", "entail"]
Source = Literal["reference_passages", "topic_document", "corpus_search", "reference_statements"]

#: Every reason code a verdict of this judge can carry.
REASONS: tuple[str, ...] = (
    "supported", "contradicted", "not_supported", "not_found", "not_in_reference",
    "entailed", "not_covered", "no_reference", "bad_reference", "empty_fragment", "judge_error",
    "no_knowledge_source", "over_budget",
)

FEATURES: tuple[str, ...] = (
    "cos_sentence", "cos_passage", "cos_margin", "lex_best", "lex_all", "bigram_all",
    "bm25_log", "num_missing", "has_number", "name_missing", "negation_mismatch", "len_log",
    "soft_recall", "soft_covered",
)

_STOP = frozenset("""a an the of in on at to for by with from and or but as is was were are be been
being has have had do does did this that these those it its he she his her him they their them
who which whom whose also other some such than then there very into over under about after
before during can could may might will would should not no""".split())
_NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor|without|cannot|can't|won't|isn't|"
                       r"wasn't|aren't|weren't|doesn't|don't|didn't|hasn't|haven't|hadn't)\b",
                       re.IGNORECASE)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)*\b")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk of reference text.

    Attributes:
        title: The document title or reference field it comes from.
        text: The chunk.
        score: bm25 score for the fragment it was retrieved for (0 when not ranked).
    """

    title: str
    text: str
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Evidence for a batch of fragments of one response.

    Attributes:
        passages: The ``top_k`` passages per fragment, best first.
        source: Where they came from (see the module docstring).
        covers_topic: Whether the reference is the topic's own text, so that a fact about
            the topic missing from it counts as not supported.
    """

    passages: tuple[tuple[Passage, ...], ...]
    source: Source
    covers_topic: bool


class BadReference(ValueError):
    """The reference cannot be used; ``code`` is ``no_reference`` or ``bad_reference``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def chunk_text(text: str, *, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP_WORDS) -> list[str]:
    """Cut ``text`` into sentence-aligned passages of about ``words`` words.

    Each passage after the first repeats the last sentences of the previous one, up to
    ``overlap`` words. A sentence longer than ``words`` is a passage of its own.
    """
    sents = [text[a:b] for a, b in sentence_spans(text)]
    lengths = [len(s.split()) for s in sents]
    chunks, start = [], 0
    while start < len(sents):
        end, size = start, 0
        while end < len(sents) and (size == 0 or size + lengths[end] <= words):
            size += lengths[end]
            end += 1
        chunks.append(" ".join(sents[start:end]))
        if end >= len(sents):
            break
        back, kept = end, 0
        while back - 1 > start and kept + lengths[back - 1] <= overlap:
            back -= 1
            kept += lengths[back]
        start = back
    return chunks


class PassageIndex:
    """A bm25s index over passages.

    Args:
        passages: The passages to rank (``score`` ignored).
    """

    def __init__(self, passages: Sequence[Passage]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.passages = tuple(passages)
        self._retriever = None
        if self.passages:
            tokens = bm25s.tokenize([p.text for p in self.passages], stopwords="en", show_progress=False)
            if tokens.vocab:  # passages with no word (`"`, `...`) leave nothing to rank
                self._retriever = bm25s.BM25()
                self._retriever.index(tokens, show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[tuple[Passage, ...]]:
        """The ``k`` best passages for each query, best first."""
        if self._retriever is None or not queries:
            return [() for _ in queries]
        k = min(k, len(self.passages))
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        ids, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [tuple(Passage(self.passages[i].title, self.passages[i].text, float(s))
                      for i, s in zip(row_ids, row_scores))
                for row_ids, row_scores in zip(ids, scores)]


_INDEXES: OrderedDict[str, PassageIndex] = OrderedDict()


def index_for(key: str, build) -> PassageIndex:
    """The cached index under ``key``, built with ``build()`` on first use."""
    if key in _INDEXES:
        _INDEXES.move_to_end(key)
        return _INDEXES[key]
    index = PassageIndex(build())
    _INDEXES[key] = index
    while len(_INDEXES) > MAX_CACHED_INDEXES:
        _INDEXES.popitem(last=False)
    return index


def _chunked(title: str, texts: Sequence[str]) -> list[Passage]:
    return [Passage(title, c) for t in texts for c in chunk_text(t)]


class Corpus:
    """A reference corpus: FActScore's SQLite ``documents(title, text)`` or a JSONL of ``{title, text}``.

    Args:
        path: ``.db`` / ``.sqlite`` (SQLite) or ``.jsonl``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is neither format.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"corpus {self.path} does not exist")
        stat = self.path.stat()
        self.key = f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        self._docs: dict[str, list[str]] | None = None
        if self.path.suffix == ".jsonl":
            self._docs = {}
            with self.path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not isinstance(row.get("title"), str) or not isinstance(row.get("text"), str):
                        raise ValueError(f"{self.path}:{n}: expected {{title, text}} strings")
                    self._docs.setdefault(row["title"], []).append(row["text"])
        elif self.path.suffix not in {".db", ".sqlite", ".sqlite3"}:
            raise ValueError(f"corpus {self.path}: expected .jsonl or .db/.sqlite, got {self.path.suffix!r}")
        self._lower: dict[str, str] | None = None

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            return conn.execute(sql, args).fetchall()

    def documents(self, title: str) -> list[str]:
        """Texts of the documents titled ``title`` (exact, else ignoring case)."""
        if self._docs is not None:
            if title in self._docs:
                return self._docs[title]
            if self._lower is None:
                self._lower = {t.lower(): t for t in self._docs}
            real = self._lower.get(title.lower())
            return self._docs[real] if real else []
        rows = self._query("SELECT text FROM documents WHERE title = ?", (title,))
        if not rows:
            rows = self._query("SELECT text FROM documents WHERE title = ? COLLATE NOCASE", (title,))
        # FActScore's db stores a page's paragraphs joined by <s></s> markers
        return [re.sub(r"</?s>", " ", t) for (t,) in rows]

    def topic_index(self, title: str) -> PassageIndex | None:
        """The index of the topic's own documents, or ``None`` when there are none."""
        docs = self.documents(title)
        if not docs:
            return None
        return index_for(f"{self.key}#{title.lower()}", lambda: _chunked(title, docs))

    def global_index(self) -> PassageIndex | None:
        """The index of the whole corpus, or ``None`` when it is too large to index."""
        def build() -> list[Passage]:
            if self._docs is not None:
                items = [(t, x) for t, xs in self._docs.items() for x in xs]
            else:
                items = self._query("SELECT title, text FROM documents")
            return [p for t, x in items for p in _chunked(t, [re.sub(r"</?s>", " ", x)])]

        n = (sum(map(len, self._docs.values())) if self._docs is not None
             else self._query("SELECT COUNT(*) FROM documents")[0][0])
        if n > MAX_GLOBAL_INDEX_DOCS:
            return None
        return index_for(f"{self.key}#*", build)


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise BadReference("bad_reference", f"reference.{field} must be a string or a list of strings")


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()


def retrieve(fragments: Sequence[str], reference: Mapping[str, Any], *,
             corpus: Corpus | None = None, top_k: int = TOP_K) -> Retrieval:
    """Evidence passages for each fragment of one response (the seam for other verifiers).

    Args:
        fragments: The facts to find evidence for.
        reference: A bio reference ``{topic, passages?}`` or a med reference
            ``{must_have, nice_to_have, answer}``.
        corpus: Searched for bio references without ``passages``.
        top_k: Passages per fragment.

    Returns:
        The passages per fragment and where they came from.

    Raises:
        BadReference: The reference is missing or malformed (``code`` says which).
    """
    if not isinstance(reference, Mapping) or not reference:
        raise BadReference("no_reference", "the response has no reference")
    if any(k in reference for k in ("must_have", "nice_to_have", "answer")):
        statements = (_strings(reference.get("must_have"), "must_have")
                      + _strings(reference.get("nice_to_have"), "nice_to_have"))
        answer = _strings(reference.get("answer"), "answer")
        if not statements and not answer:
            raise BadReference("no_reference", "reference has no statements and no answer")
        key = "med#" + _digest(statements + ["\1"] + answer)
        index = index_for(key, lambda: [Passage("statement", s) for s in statements]
                          + _chunked("answer", answer))
        return Retrieval(tuple(index.search(fragments, top_k)), "reference_statements", False)
    topic = reference.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise BadReference("bad_reference", "reference.topic must be a string")
    passages = _strings(reference.get("passages"), "passages")
    if passages:
        index = index_for("passages#" + _digest(passages), lambda: _chunked(topic or "reference", passages))
        return Retrieval(tuple(index.search(fragments, top_k)), "reference_passages", True)
    if not topic or corpus is None:
        raise BadReference("no_reference",
                              "reference has no passages" + ("" if topic else " and no topic")
                              + ("" if corpus else ", and the judge has no corpus"))
    index = corpus.topic_index(topic)
    if index is not None:
        return Retrieval(tuple(index.search(fragments, top_k)), "topic_document", True)
    index = corpus.global_index()
    if index is None:
        raise BadReference("no_reference", f"topic {topic!r} is not in the corpus")
    queries = [f"{topic} {f}" for f in fragments]
    return Retrieval(tuple(index.search(queries, top_k)), "corpus_search", False)


def content_words(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    """Lowercased content words of ``text`` (stopwords and ``drop`` removed, plural "s" cut)."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP or w in drop:
            continue
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _names(text: str, drop: frozenset[str]) -> set[str]:
    return {n.lower() for n in _NAME.findall(text.strip()) if n.lower() not in drop}


#: Entity kinds whose clash with the reference contradicts a fact (spaCy labels -> kind).
CONFLICT_KINDS: dict[str, str] = {"NORP": "nationality", "GPE": "place", "LOC": "place",
                                  "DATE": "date", "PERSON": "name"}
#: NORP words that are no nationality: a fact "X is Jewish" does not clash with "X was French".
_NOT_NATIONALITY = frozenset("""jewish jew jews christian catholic protestant muslim islamic buddhist
hindu sikh orthodox evangelical anglican lutheran methodist baptist mormon democrat democratic
republican conservative liberal communist socialist nazi black white latino latina hispanic
african asian european arab western eastern northern southern south north east west
indigenous native born""".split())
_PRONOUN_SUBJECTS = frozenset({"he", "she", "they", "it", "his", "her", "their", "its", "who"})
#: Parsed texts kept for the entity check (claims and evidence sentences).
MAX_CACHED_PARSES = 20_000


def _anchor(tok):
    """The verb (or auxiliary) an entity token hangs on: its relation in the sentence."""
    cur, steps = tok, 0
    while cur.pos_ not in {"VERB", "AUX"} and cur.head is not cur and steps < 6:
        cur, steps = cur.head, steps + 1
    return cur if cur.pos_ in {"VERB", "AUX"} else None


def _subject(verb):
    """The subject of ``verb`` (or of the clause it is coordinated with), or ``None``."""
    cur = verb
    for _ in range(4):
        subj = next((c for c in cur.children if c.dep_ in {"nsubj", "nsubjpass"}), None)
        if subj is not None:
            return subj
        if cur.dep_ not in {"conj", "xcomp", "advcl", "relcl", "acl"} or cur.head is cur:
            break
        cur = cur.head
    return None


def _subject_words(verb) -> set[str]:
    """Lowercased words of the subject of ``verb`` (or of the clause it is coordinated with)."""
    cur = verb
    for _ in range(4):
        subj = next((c for c in cur.children if c.dep_ in {"nsubj", "nsubjpass"}), None)
        if subj is not None:
            return {t.lower_ for t in subj.subtree if t.is_alpha}
        if cur.dep_ not in {"conj", "xcomp", "advcl", "relcl", "acl"} or cur.head is cur:
            break
        cur = cur.head
    return set()


def _nationalities(text: str) -> set[str]:
    return {w for w in re.split(r"[\s\-\u2013/]+", text.lower()) if w and w not in _NOT_NATIONALITY}


def _years(text: str) -> set[str]:
    return set(re.findall(r"\b1\d{3}\b|\b20\d{2}\b", text))


def _entity_text(ent) -> str:
    """An entity with the words hyphen-joined to it ("German" in "German-Jewish")."""
    doc, a, b = ent.doc, ent.start, ent.end
    while b + 1 < len(doc) and doc[b].text in {"-", "\u2013"} and doc[b + 1].is_alpha:
        b += 2
    return doc[a:b].text


def _present(kind: str, text: str, evidence_lower: str, drop: frozenset[str]) -> bool:
    """Whether the evidence states the fact's entity (leniently: any part of it)."""
    low = text.lower()
    if kind == "nationality":
        parts = _nationalities(text)
        return not parts or all(re.search(rf"\b{re.escape(p)}", evidence_lower) for p in parts)
    if kind == "date":
        years = _years(text)
        return not years or any(y in evidence_lower for y in years)
    words = [w for w in _WORD.findall(low) if w not in _STOP and w not in drop]
    return not words or any(re.search(rf"\b{re.escape(w)}\b", evidence_lower) for w in words)


def _clashes(kind: str, fact_text: str, other_text: str) -> bool:
    if kind == "nationality":
        return bool(_nationalities(other_text)) and not _nationalities(other_text) >= _nationalities(fact_text)
    if kind == "date":  # only years are compared: "1815" does not clash with "10 December 1815"
        return bool(_years(fact_text)) and bool(_years(other_text)) and not (_years(fact_text) & _years(other_text))
    return fact_text.lower() not in other_text.lower() and other_text.lower() not in fact_text.lower()


def _is_topic_subject(verb, drop: frozenset[str]) -> bool:
    """Whether the subject of ``verb`` is the topic: its head word is a pronoun or a word of the
    topic (an unknown topic, ``drop`` empty, accepts any subject)."""
    if not drop:
        return True
    subj = _subject(verb)
    return subj is not None and (subj.lower_ in _PRONOUN_SUBJECTS or subj.lower_ in drop)


def _role(tok) -> str:
    """How an entity token attaches to its relation: the preposition it hangs on, or its own
    dependency ("attr", "dobj", ...)."""
    cur = tok
    for _ in range(4):
        if cur.dep_ == "pobj" and cur.head.pos_ == "ADP":
            return cur.head.lower_
        if cur.head is cur or cur.head.pos_ in {"VERB", "AUX"}:
            return cur.dep_
        cur = cur.head
    return cur.dep_


#: Dependencies of a verb's children that carry what the relation is about (its object and
#: complements), compared by ``_other_arguments``.
_ARGUMENT_DEPS = frozenset({"dobj", "attr", "prep", "dative", "acomp", "oprd", "agent", "npadvmod"})


def _other_arguments(verb, ent, drop: frozenset[str]) -> set[str]:
    """Content words of the verb's object and complements, leaving out the branch that holds
    ``ent``: what tells one event of a repeatable relation from another ("joined Mainz in
    2017" and "joined Dortmund in 2018" are two events, not a clash of years)."""
    words: set[str] = set()
    for child in verb.children:
        if child.dep_ not in _ARGUMENT_DEPS or child.i <= ent.root.i < child.i + 1 or (
                child.left_edge.i <= ent.start and ent.end - 1 <= child.right_edge.i):
            continue
        words |= {w for t in child.subtree for w in content_words(t.text, drop)}
    return words


def entity_conflicts(claim_doc, sentence_docs, evidence_text: str,
                     drop: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The first entity of the claim that the evidence states otherwise, or ``None``.

    Conservative: the claim's nationality, place, date (year) or name must appear nowhere in
    the evidence, and an evidence sentence must give another one of the same kind in the same
    relation about the same subject:

    - the same verb; "be" only for a nationality ("X is in Y" against "he is from Z" is no
      clash: "be" joins too many relations);
    - a place or name in the same role (the same preposition: "born in" against "born in",
      not "president of" against "researcher in");
    - the claim is about the topic (the head word of its subject is a pronoun or a word of the
      topic, when the topic is known), and so is the sentence (a pronoun, a word of the topic,
      or a word of the claim's subject);
    - the evidence's entity is not the topic itself (a topic misread as a place) and does not
      occur in the claim ("Wellington is in New Zealand" against "he is from New Zealand");
    - the same event: the claim's other arguments of the verb (object, complements) are all
      in the sentence's ("won the title in 2010" against "won the title in 2009", not "joined
      Mainz in 2017" against "joined Dortmund in 2018").

    ``drop`` holds the topic's words.

    Returns:
        ``{"kind", "fact", "fact_span", "evidence", "evidence_span", "sentence", "relation"}``;
        spans are character offsets into the claim and into the sentence.
    """
    evidence_lower = evidence_text.lower()
    claim_lower = claim_doc.text.lower()
    for ent in claim_doc.ents:
        kind = CONFLICT_KINDS.get(ent.label_)
        if kind is None:
            continue
        text = _entity_text(ent)
        if set(_WORD.findall(text.lower())) <= drop:
            continue  # the topic itself
        if _present(kind, text, evidence_lower, drop):
            continue
        verb = _anchor(ent.root)
        if verb is None or (verb.lemma_.lower() == "be" and kind != "nationality"):
            continue
        if not _is_topic_subject(verb, drop):
            continue
        subject = _subject_words(verb) - _STOP
        role = _role(ent.root)
        args = _other_arguments(verb, ent, drop)
        for sdoc in sentence_docs:
            for other in sdoc.ents:
                if CONFLICT_KINDS.get(other.label_) != kind:
                    continue
                other_text = _entity_text(other)
                if set(_WORD.findall(other_text.lower())) & drop or other_text.lower() in claim_lower:
                    continue
                if not _clashes(kind, text, other_text):
                    continue
                o_verb = _anchor(other.root)
                if o_verb is None or o_verb.lemma_.lower() != verb.lemma_.lower():
                    continue
                if kind in {"place", "name"} and _role(other.root) != role:
                    continue
                if not args <= _other_arguments(o_verb, other, drop):
                    continue
                # the same subject: the head word of the sentence's subject is a pronoun, a word
                # of the topic or a word of the fact's subject ("the movement" is not "the
                # divisiveness fueled by the movement")
                o_subject = _subject(o_verb)
                if o_subject is None or o_subject.lower_ not in _PRONOUN_SUBJECTS | subject | drop:
                    continue
                return {"kind": kind, "fact": text, "fact_span": [ent.start_char, ent.start_char + len(text)],
                        "evidence": other_text,
                        "evidence_span": [other.start_char, other.start_char + len(other_text)],
                        "sentence": sdoc.text, "relation": verb.lemma_.lower()}
    return None


class Verifier:
    """Scores facts against evidence: MiniLM, lexical and consistency features, then a logistic model.

    Args:
        classifier: Path of the logistic-regression JSON (the shipped one by default; a path
            that does not exist leaves the verifier untrained: features only).
        threads: BLAS threads while this verifier runs the model (set, then restored: nothing
            changes for the rest of the process); ``None`` leaves them. One by default: short
            texts gain little from more, and on a loaded 2-core machine threads spin against
            each other (40 K-QA pairs took 74 s with 2 threads and 5.5 s with 1, load ~12).

    Raises:
        RuntimeError: The MiniLM package is missing (names the install command).
    """

    def __init__(self, *, classifier: Any = _MODEL_FILE, threads: int | None = BLAS_THREADS) -> None:
        self.model = MiniLM(threads=threads)
        self.dim = self.model.dim
        found = classifier if classifier is _MODEL_FILE else Path(classifier)
        self.params = json.loads(found.read_text(encoding="utf-8")) if found.is_file() else None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # Loaded here, not on first use: the first answer's time budget must not pay for it.
        from halt_eval.judges.atomic_facts import load_spacy

        self._nlp = load_spacy()
        self._parses: OrderedDict[str, Any] = OrderedDict()

    def parse(self, texts: Sequence[str]) -> list[Any]:
        """spaCy docs of ``texts`` (the splitter's pipeline; cached by text)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._parses))
        for t, doc in zip(todo, self._nlp.pipe(todo)):
            self._parses[t] = doc
        out = [self._parses[t] for t in texts]
        while len(self._parses) > MAX_CACHED_PARSES:
            self._parses.popitem(last=False)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` (cached by text)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self.model.encode(todo)
            for t, v in zip(todo, vecs):
                self._cache[t] = v.astype(np.float32)
            while len(self._cache) > MAX_CACHED_EMBEDDINGS:
                self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def features(self, claims: Sequence[str], evidence: Sequence[Sequence[Passage]],
                 topic: str = "") -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Feature rows (``FEATURES`` order) and per-claim details for the evidence record.

        Args:
            claims: The facts.
            evidence: Passages per fact.
            topic: Words of the topic are left out of lexical and name checks.
        """
        drop = frozenset(content_words(topic))
        sents_per = []
        for passages in evidence:
            sents = []
            for p in passages:
                sents.extend(p.text[a:b] for a, b in sentence_spans(p.text))
            sents_per.append(list(dict.fromkeys(sents)))
        all_texts = list(claims) + [s for ss in sents_per for s in ss] + [p.text for ps in evidence for p in ps]
        vec = dict(zip(all_texts, self.embed(all_texts))) if all_texts else {}
        rows, details = [], []
        claim_docs = self.parse(claims)
        for claim, passages, sents, claim_doc in zip(claims, evidence, sents_per, claim_docs):
            c = vec[claim]
            s_cos = np.array([float(vec[s] @ c) for s in sents]) if sents else np.zeros(0)
            p_cos = np.array([float(vec[p.text] @ c) for p in passages]) if passages else np.zeros(0)
            best = int(s_cos.argmax()) if len(s_cos) else -1
            best_sent = sents[best] if best >= 0 else ""
            top2 = np.sort(s_cos)[-2:] if len(s_cos) > 1 else np.array([0.0, s_cos.max() if len(s_cos) else 0.0])
            words = content_words(claim, drop)
            best_words = set(content_words(best_sent))
            all_text = " ".join(p.text for p in passages)
            all_words = set(content_words(all_text))
            bigrams = list(zip(words, words[1:]))
            all_list = content_words(all_text)
            all_bigrams = set(zip(all_list, all_list[1:]))
            nums = _numbers(claim)
            names = _names(claim, drop)
            all_lower = all_text.lower()
            num_missing = [n for n in nums if n not in _numbers(all_text)]
            name_missing = [n for n in names if n not in all_lower]
            neg_mismatch = bool(best_sent) and (bool(_NEGATION.search(claim)) != bool(_NEGATION.search(best_sent)))
            row = [
                float(s_cos.max()) if len(s_cos) else 0.0,
                float(p_cos.max()) if len(p_cos) else 0.0,
                float(top2[-1] - top2[-2]),
                sum(w in best_words for w in words) / len(words) if words else 0.0,
                sum(w in all_words for w in words) / len(words) if words else 0.0,
                sum(b in all_bigrams for b in bigrams) / len(bigrams) if bigrams else 0.0,
                math.log1p(max((p.score for p in passages), default=0.0)),
                len(num_missing) / len(nums) if nums else 0.0,
                1.0 if nums else 0.0,
                len(name_missing) / len(names) if names else 0.0,
                1.0 if neg_mismatch else 0.0,
                math.log1p(len(words)),
                *self._soft_recall(words, all_list),
            ]
            rows.append(row)
            word_set = set(words)
            close = [s for s, cos in zip(sents, s_cos) if cos >= CONTRADICTION_MIN_COS or (
                word_set and len(word_set & set(content_words(s))) / len(word_set) >= CONTRADICTION_MIN_OVERLAP)]
            clash = [s for s in close if num_missing and _numbers(s)]
            contradicted = bool(clash) or (neg_mismatch and row[0] >= POLARITY_MIN_COS)
            conflict = None
            if any(CONFLICT_KINDS.get(e.label_) for e in claim_doc.ents):
                conflict = entity_conflicts(claim_doc, self.parse(sents), all_text, drop)
            details.append({"best_sentence": (conflict["sentence"] if conflict else clash[0] if clash
                                              else best_sent),
                            "cosine": round(row[0], 3),
                            "lexical": round(row[4], 3), "numbers_missing": num_missing,
                            "names_missing": name_missing, "negation_mismatch": neg_mismatch,
                            "contradicted": contradicted, "entity_conflict": conflict})
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURES)), details

    def _soft_recall(self, words: Sequence[str], evidence_words: Sequence[str]) -> tuple[float, float]:
        """Mean over the fact's content words of the best MiniLM cosine to an evidence word, and
        the share above ``SOFT_MATCH_COS``: lexical recall that forgives synonyms and inflection."""
        a, b = list(dict.fromkeys(words)), list(dict.fromkeys(evidence_words))
        if not a or not b:
            return 0.0, 0.0
        best = (self.embed(a) @ self.embed(b).T).max(axis=1)
        return float(best.mean()), float((best >= SOFT_MATCH_COS).mean())

    def probability(self, X: np.ndarray, profile: Profile) -> np.ndarray:
        """``p_supported`` per row from the profile's logistic model (cosine alone if untrained)."""
        if self.params is None or profile not in self.params["profiles"]:
            return np.clip(X[:, 0], 0.0, 1.0) if len(X) else np.zeros(0)
        p = self.params["profiles"][profile]
        z = (X - np.array(p["mean"])) / np.array(p["scale"])
        return 1.0 / (1.0 + np.exp(-(z @ np.array(p["coef"]) + p["intercept"])))

    def threshold(self, profile: Profile) -> float:
        """The decision threshold of a profile (0.5 if untrained)."""
        if self.params is None or profile not in self.params["profiles"]:
            return 0.5
        return float(self.params["profiles"][profile]["threshold"])


class RetrievalJudge:
    """The embedded judge for biographies and medical answers (see the module docstring).

    Args:
        corpus: A FActScore-format SQLite or ``{title, text}`` JSONL searched for bio
            references that carry no passages; ``None``: Wikipedia (``knowledge``).
        knowledge: With no corpus, where bio references without passages get their text:
            ``"wikipedia"`` (the endpoint of ``$HALT_WIKIPEDIA_API``, which ``off`` turns
            off), a ``halt_eval.judges.wikipedia.Wikipedia`` instance, or ``None`` for none.
        top_k: Passages retrieved per fact.
        classifier: Logistic-regression parameters; the shipped file by default.
        threads: BLAS threads while the judge runs its model (``minilm.BLAS_THREADS``; set and
            restored around each call); ``None`` keeps the process's setting.
        coverage: Also judge whether the answer covers each of the reference's ``must_have``
            statements (``Judgement.coverage``, for ``reference_recall`` completeness); the med
            domain's record turns it on.

    Raises:
        RuntimeError: The embedding model or its packages are missing (names the fix).
        FileNotFoundError: ``corpus`` does not exist.
        ValueError: ``top_k`` is below 1, or the corpus format is unknown.
    """

    name = "retrieval"
    #: 2: entity conflicts are contradictions; facts past the budget are not judged.
    #: 3: narrower contradictions: a polarity clash needs a very close sentence; an entity
    #: conflict needs the claim to be about the topic, the same role and the same event.
    version = "3"

    def __init__(self, *, corpus: str | Path | None = None, top_k: int = TOP_K,
                 classifier: Any = _MODEL_FILE, threads: int | None = BLAS_THREADS,
                 coverage: bool = False, knowledge: Any = "wikipedia") -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.top_k = top_k
        self.coverage = coverage
        self.corpus_path = None if corpus is None else str(corpus)
        self.classifier = "shipped" if classifier is _MODEL_FILE else str(classifier)
        self.corpus = Corpus(corpus) if corpus is not None else None
        self._knowledge = None if corpus is not None else _knowledge_source(knowledge)
        self._warned = False
        self.verifier = Verifier(classifier=classifier, threads=threads)
        self.tag = f"{self.name}@{self.version}"

    def spec(self) -> dict[str, Any]:
        """Name, version and the options that can change a verdict."""
        return {"name": self.name, "version": self.version,
                "options": {"top_k": self.top_k, "coverage": self.coverage,
                            "corpus": self.corpus_path, "classifier": self.classifier,
                            "knowledge": self._knowledge_spec()}}

    def _knowledge_spec(self) -> str | None:
        k = self._knowledge
        if k is None or isinstance(k, str):
            return k
        return k.key

    def knowledge(self) -> Any:
        """The Wikipedia source used when there is no corpus (opened on first use), or ``None``."""
        if isinstance(self._knowledge, str):
            from halt_eval.judges.wikipedia import Wikipedia

            self._knowledge = Wikipedia(api=self._knowledge.partition(":")[2])
        return self._knowledge

    def stats(self) -> dict[str, Any]:
        """Counts of the knowledge source (for the run summary), and a one-line note when it
        could not be reached."""
        k = self._knowledge
        if k is None or isinstance(k, str):
            return {}
        out: dict[str, Any] = {"knowledge": k.key, **k.counts}
        if k.unreachable:
            from halt_eval.judges.wikipedia import HOW_TO

            out["note"] = (f"{k.counts['unavailable']} bio answer(s) unverifiable: Wikipedia unavailable "
                           f"({k.unreachable}); {HOW_TO}")
        return out

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]:
        """One judgement per request; never raises over one bad answer."""
        out = []
        if self.corpus is None and self._knowledge is not None:
            topics = [r.response.reference.get("topic") for r in batch
                      if not _has_own_text(r.response.reference)]
            topics = [t for t in topics if isinstance(t, str) and t.strip()]
            if topics:
                self.knowledge().prefetch(topics)
        for req in batch:
            try:
                with answer_clock(req.response, "judge"):
                    out.append(self._judge_one(req))
            except Exception as e:  # noqa: BLE001 - one bad answer must not sink the batch
                out.append(self._unverifiable(req, "judge_error", f"{type(e).__name__}: {e}"))
        return out

    def _unverifiable(self, req: JudgeRequest, code: str, why: str) -> Judgement:
        v = Verdict("unverifiable", self.tag, code, why)
        coverage = None
        statements = _must_have(req.response.reference) if self.coverage else []
        if statements:  # no statement: completeness is undefined, not 0
            coverage = tuple(Verdict("unverifiable", self.tag, code, why) for _ in statements)
        return Judgement(tuple(v for _ in req.fragments), coverage=coverage, evidence=_split_evidence(req)[0])

    def _judge_one(self, req: JudgeRequest) -> Judgement:
        ref = req.response.reference
        texts = [f.text.strip() for f in req.fragments]
        from halt_eval.judges.wikipedia import WikipediaUnavailable

        corpus = self.corpus
        if corpus is None and self._knowledge is not None and not _has_own_text(ref):
            corpus = self.knowledge()
        try:
            found = retrieve(texts, ref, corpus=corpus, top_k=self.top_k)
        except BadReference as e:
            return self._unverifiable(req, e.code, str(e))
        except WikipediaUnavailable as e:
            if not self._warned:  # once per run, not once per fact
                self._warned = True
                print(f"halt-eval: {e}", file=sys.stderr)
            return self._unverifiable(req, "no_knowledge_source", str(e))
        med = found.source == "reference_statements"
        topic = ref.get("topic", "") if isinstance(ref.get("topic", ""), str) else ""
        profile: Profile = "entail" if med else "bio"
        # Coverage first (a few statements against the answer, capped in length): the facts then
        # get what is left of the answer's budget, and nothing runs after its last check.
        coverage = self._coverage(req) if self.coverage and med else None
        split_ev, over = _split_evidence(req)
        todo = [i for i, t in enumerate(texts) if t and i not in over]
        X, details = _features_in_budget(self.verifier, req, [texts[i] for i in todo],
                                         [found.passages[i] for i in todo], topic)
        probs = self.verifier.probability(X, profile)
        thr = self.verifier.threshold(profile)
        verdicts: list[Verdict] = [Verdict("unverifiable", self.tag, "empty_fragment", "the fragment is empty")
                                   for _ in texts]
        for i in over:
            verdicts[i] = Verdict("unverifiable", self.tag, "over_budget",
                                  f"past the first {MAX_JUDGED_FACTS} facts of the answer; not judged")
        for i in todo[len(details):]:  # the answer's time budget ran out before these
            verdicts[i] = _over_time(self.tag)
        for i, p, d in zip(todo, probs, details):
            verdicts[i] = self._decide(float(p), thr, d, found, i, med)
        return Judgement(tuple(verdicts), coverage=coverage,
                         evidence={"retrieval_source": found.source, "profile": profile, **split_ev})

    def _decide(self, p: float, thr: float, d: dict, found: Retrieval, i: int, med: bool) -> Verdict:
        evidence = {
            "p_supported": round(p, 3), "threshold": thr, "source": found.source, **d,
            "passages": [{"title": x.title, "text": x.text[:EVIDENCE_CHARS], "bm25": round(x.score, 3)}
                         for x in found.passages[i]],
        }
        if d.get("entity_conflict"):
            c = d["entity_conflict"]
            return Verdict("incorrect", self.tag, "contradicted",
                           f"the reference gives another {c['kind']}: {c['evidence']!r}, not {c['fact']!r}",
                           evidence)
        if d["contradicted"]:
            return Verdict("incorrect", self.tag, "contradicted",
                           "a close reference sentence states another number or the opposite", evidence)
        if p >= thr:
            return Verdict("correct", self.tag, "supported",
                           f"supported by the reference (p={p:.2f})", evidence)
        if med:
            return Verdict("unverifiable", self.tag, "not_in_reference",
                           f"not found in the reference statements (p={p:.2f})", evidence)
        if found.covers_topic:
            return Verdict("incorrect", self.tag, "not_supported",
                           f"the topic's reference does not support it (p={p:.2f})", evidence)
        return Verdict("unverifiable", self.tag, "not_found",
                       f"no support found in a corpus search (p={p:.2f})", evidence)

    def _coverage(self, req: JudgeRequest) -> tuple[Verdict, ...] | None:
        statements = _must_have(req.response.reference)
        if not statements:  # nothing a complete answer must state: completeness is undefined
            return None
        # the answer as given (nothing after an abstention marker); no fragment, no answer
        answer = req.text if req.fragments else ""
        if not answer.strip():
            return tuple(Verdict("incorrect", self.tag, "not_covered", "nothing was answered") for _ in statements)
        index = index_for("answer#" + _digest([answer]), lambda: _chunked("answer", [answer]))
        evidence = index.search(statements, self.top_k)
        X, details = self.verifier.features(statements, evidence)
        probs = self.verifier.probability(X, "entail")
        thr = self.verifier.threshold("entail")
        out = []
        for s, p, d, passages in zip(statements, probs, details, evidence):
            ev = {"statement": s, "p_supported": round(float(p), 3), "threshold": thr, **d}
            if d["contradicted"] or d["entity_conflict"]:
                out.append(Verdict("incorrect", self.tag, "contradicted", "the answer states otherwise", ev))
            elif p >= thr:
                out.append(Verdict("correct", self.tag, "entailed", f"the answer states it (p={p:.2f})", ev))
            else:
                out.append(Verdict("incorrect", self.tag, "not_covered",
                                   f"the answer does not state it (p={p:.2f})", ev))
        return tuple(out)


def _split_evidence(req: JudgeRequest) -> tuple[dict[str, Any], set[int]]:
    """Response-level evidence from the splitter (``{"skipped": [...]}``, when the atomic-fact
    splitter cut this answer in this process) and the fragments past the fact budget: the
    splitter's last piece when it stopped early, and every fragment past ``MAX_JUDGED_FACTS``."""
    from halt_eval.judges.atomic_facts import split_record

    over = {f.index for f in req.fragments if f.index >= MAX_JUDGED_FACTS}
    record = split_record(req.response.text, [f.span for f in req.fragments])
    if record is None:
        return {}, over
    if record["over_budget"]:
        over |= {f.index for f in req.fragments if list(f.span) == record["over_budget"]}
    return {"skipped": record["skipped"]}, over


def _has_own_text(reference: Any) -> bool:
    """Whether a reference carries its own text (passages, or med statements): no source needed."""
    return not isinstance(reference, Mapping) or bool(reference.get("passages")) or any(
        k in reference for k in ("must_have", "nice_to_have", "answer"))


def _knowledge_source(knowledge: Any) -> Any:
    """``"wikipedia:<api>"`` (opened lazily, so med runs never touch the cache), a source
    object as given, or ``None`` (no source, or ``$HALT_WIKIPEDIA_API`` is ``off``)."""
    if knowledge is None or not isinstance(knowledge, str):
        return knowledge
    if knowledge != "wikipedia":
        raise ValueError(f"unknown knowledge source {knowledge!r}; known: wikipedia")
    from halt_eval.judges.wikipedia import configured_api

    api = configured_api()
    return None if api is None else f"wikipedia:{api}"


def _must_have(reference: Any) -> list[str]:
    if not isinstance(reference, Mapping):
        return []
    try:
        return _strings(reference.get("must_have"), "must_have")
    except BadReference:
        return []


#: Facts whose features are computed at a time when an answer has a time budget; between
#: chunks the judge checks the answer's clock (``halt_eval.budget``).
BUDGET_CHUNK = 8


def _features_in_budget(verifier: Verifier, req: JudgeRequest, claims: Sequence[str],
                        evidence: Sequence[Sequence[Passage]], topic: str):
    """``verifier.features`` for the first facts the answer's time budget allows: in chunks of
    ``BUDGET_CHUNK`` while the budget lasts, all at once when there is none. Returns the feature
    rows and details of a prefix of ``claims``; the clock records how many were left."""
    from halt_eval.budget import clock_of

    clock = clock_of(req.response)  # the stage ``judge`` opened
    if clock.deadline is None:
        return verifier.features(claims, evidence, topic)
    rows, details = [], []
    for start in range(0, len(claims), BUDGET_CHUNK):
        if clock.expired():
            clock.stop("judge", unjudged=len(claims) - start)
            break
        X, d = verifier.features(claims[start:start + BUDGET_CHUNK],
                                 evidence[start:start + BUDGET_CHUNK], topic)
        rows.append(X)
        details.extend(d)
    X = np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)))
    return X, details


def _over_time(tag: str) -> Verdict:
    return Verdict("unverifiable", tag, "over_budget",
                   "the answer's time budget ran out before this fact was judged")
