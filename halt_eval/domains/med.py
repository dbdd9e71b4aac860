"""Medicine: atomic facts (independent), checked against physicians' must-have statements."""

from __future__ import annotations

from typing import Any

from halt_eval.domains.base import ABSTAIN_HINT, Domain, Source


def load_med(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    return [
        domain.doc(task, source, i,
                   f"{r['Question'].strip()}\nAnswer as a physician would, in a short paragraph. "
                   f"{ABSTAIN_HINT}",
                   {"must_have": r.get("Must_have") or [], "nice_to_have": r.get("Nice_to_have") or [],
                    "answer": r.get("Free_form_answer") or ""})
        for i, r in enumerate(rows)
    ]


_GITHUB = "https://raw.githubusercontent.com"
#: Commits the online copies are pinned to (the ones shared/data was built from).
_KQA = ("Itaymanes/K-QA", "ef403d012e199fcfa0d8c02b38a96ff95164f4d0", "dataset")
_OLAPH = ("dmis-lab/OLAPH", "17d90148dffe71ac92ddbf0a8be2ba833ce29dcf", "MedLFQA")


def _source(name: str, local: str, license: str, repo: tuple[str, str, str]) -> Source:
    """A source read from ``local`` under the data directory, else from its GitHub release at a commit."""
    owner_name, commit, folder = repo
    url = f"{_GITHUB}/{owner_name}/{commit}/{folder}/{local.rsplit('/', 1)[-1]}"
    return Source(name, "halt_eval.domains.med:load_med", local=local, revision=commit, url=url,
                  license=license)


DOMAIN = Domain(
    name="med",
    description="atomic facts, checked against physicians' must-have statements and reference answers",
    kind="independent",
    fragment="atomic fact",
    splitter="atomic_facts",
    judge="retrieval",
    judge_kwargs={"coverage": True},
    n_desired="reference_recall",
    reference_help='{"must_have": [str], "nice_to_have": [str], "answer": str}',
    sources={
        "kqa": _source("kqa", "med/k-qa/questions_w_answers.jsonl", "MIT", _KQA),
        "medlfqa_kqa_silver": _source("medlfqa_kqa_silver",
                                      "med/medlfqa/kqa_silver_wogold_test_MedLFQA.jsonl", "MIT", _OLAPH),
        "medlfqa_live_qa": _source("medlfqa_live_qa", "med/medlfqa/live_qa_test_MedLFQA.jsonl", "MIT",
                                   _OLAPH),
        "medlfqa_medication_qa": _source("medlfqa_medication_qa",
                                         "med/medlfqa/medication_qa_test_MedLFQA.jsonl", "MIT", _OLAPH),
    },
    llm_policy="claims",
    llm_policy_options={"coverage": True},
    llm_splitter="llm_facts",
    corpus_option=True,
)
