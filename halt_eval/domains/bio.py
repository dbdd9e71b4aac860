"""Biographies: atomic facts (independent), checked against retrieved reference text."""

from __future__ import annotations

from importlib.resources import files

from halt_eval.domains.base import ABSTAIN_HINT, Domain, Source

# Biographies have no reference answer to count against. HALT's Wikipedia answers held about
# 9.6 fragments on average, so a complete biography is taken to need 10 facts.
BIO_FIXED_K = 10


def packaged_topics() -> list[str]:
    """The 183 FActScore entities (MIT) that ship with the package."""
    text = (files("halt_eval.tasks") / "halt_bio" / "prompt_entities.txt").read_text(encoding="utf-8")
    return [t.strip() for t in text.splitlines() if t.strip()]


def load_factscore(rows: None, *, task: str, domain: Domain, source: str) -> list[dict]:
    """FActScore's prompt entities, from the package (no data directory needed)."""
    return [domain.doc(task, "factscore", t, f"Tell me a bio of {t}. {ABSTAIN_HINT}", {"topic": t})
            for t in packaged_topics()]


DOMAIN = Domain(
    name="bio",
    description="atomic facts, each checked against retrieved reference text about the topic",
    kind="independent",
    fragment="atomic fact",
    splitter="atomic_facts",
    judge="retrieval",
    splitter_kwargs={"topic_is_person": True},
    n_desired=f"fixed:{BIO_FIXED_K}",
    reference_help='{"topic": str, "passages": [str]}  (no passages: --corpus is searched)',
    sources={"factscore": Source("factscore", "halt_eval.domains.bio:load_factscore", license="MIT")},
    llm_policy="claims",
    llm_splitter="llm_facts",
    corpus_option=True,
)

