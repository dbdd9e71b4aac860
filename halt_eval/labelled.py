"""Human-labelled claim sets in their upstream formats (judge validation data).

Read by ``halt-eval audit`` (``halt_eval.audit``) and by the claims benchmarks
(``benchmarks/claims_data.py``). Every reader searches ``data`` recursively for the upstream
file names, so the shared data tree or any folder holding copies of the upstream files works.
Nothing here needs more than the standard library.

Sets:

- K-QA ``NLI_medical_annotator*.csv`` (``kqa_rows``): physician statements (``claim``), each
  labelled by physicians as entailed, contradicted or neutral given an LLM's ``answer``.
- Factcheck-GPT ``subtask3_claim_evidence_stance*.jsonl`` (``stance_rows``): a claim and one
  retrieved evidence passage, with the passage's stance.
- Factcheck-GPT ``Factbench*.jsonl`` (``factbench_rows``): responses with their claims, each
  labelled true or false by people.
- ExpertQA ``*.medicine.jsonl`` (``expertqa_rows``): medicine claims with a correctness label
  and the cited evidence.
- FActScore ``{ChatGPT,InstructGPT,PerplexityAI}*.jsonl`` (``factscore_bios``): biographies with
  human atomic facts labelled ``S`` (supported), ``NS`` (not supported) or ``IR`` (irrelevant).
  The Wikipedia pages the annotators read are not public data here; the stand-in reference of
  a topic is the ``S`` facts of the *other* models' bios of the same person
  (``factscore_reference_texts``).
"""

from __future__ import annotations

import csv
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from halt_eval.data import read_jsonl

FACTSCORE_MODELS: tuple[str, ...] = ("ChatGPT", "InstructGPT", "PerplexityAI")
#: Seed of the samples drawn when a reader is given a limit.
SEED = 0


def find(data: Path, pattern: str) -> list[Path]:
    """Files below ``data`` matching ``pattern``, sorted."""
    return sorted(p for p in Path(data).rglob(pattern) if p.is_file())


def sample(rows: list[dict], limit: int | None) -> list[dict]:
    """``rows``, or ``limit`` of them drawn with ``SEED`` (order kept as drawn)."""
    if limit is None or len(rows) <= limit:
        return rows
    return random.Random(SEED).sample(rows, limit)


def kqa_rows(data: Path) -> list[dict]:
    """K-QA physician NLI rows: ``{group, premise, claim, label}`` plus ``llm``, ``category``
    and ``majority`` (the raw majority label). ``label`` is 1 for ``Entailment``; the premise
    is the LLM's answer, the claim a physician's statement; ``group`` the question."""
    rows = []
    for path in find(data, "NLI_medical_annotator*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r.get("claim") and r.get("answer") and r.get("majority_label"):
                    majority = r["majority_label"].strip()
                    rows.append({"group": r["Question"], "premise": r["answer"], "claim": r["claim"],
                                 "label": int(majority == "Entailment"), "majority": majority,
                                 "llm": r.get("llm_x") or "", "category": r.get("category_x") or ""})
    return rows


def stance_rows(data: Path, limit: int | None = None) -> list[dict]:
    """Factcheck-GPT claim-evidence stance rows: ``{group, premise, claim, label, stance}``;
    ``label`` is 1 for ``completely-support`` and ``partially-support``."""
    rows = []
    for path in find(data, "subtask3_claim_evidence_stance*.jsonl"):
        for r in read_jsonl(path):
            if r.get("claim") and r.get("evidence"):
                rows.append({"group": r["claim"], "premise": r["evidence"], "claim": r["claim"],
                             "stance": r.get("stance"),
                             "label": int(r.get("stance") in {"completely-support", "partially-support"})})
    return sample(rows, limit)


def factbench_rows(data: Path) -> list[dict]:
    """Factcheck-GPT Factbench responses that carry claim labels: the upstream rows
    (``prompt, response, claims: [str], claim_labels: [True|False|"unknown"], source``)."""
    rows = []
    for path in find(data, "Factbench*.jsonl"):
        for n, r in enumerate(read_jsonl(path), 1):
            claims, labels = r.get("claims"), r.get("claim_labels")
            if not isinstance(claims, list) or not claims:
                continue
            if not isinstance(labels, list) or len(labels) != len(claims):
                raise ValueError(f"{path}: row {n}: {len(claims)} claims but claim_labels is {labels!r}")
            rows.append(r)
    return rows


def expertqa_rows(data: Path, limit: int | None = None) -> list[dict]:
    """ExpertQA medicine claims with evidence: ``{group, premise, claim, label}``; positive for
    "Definitely/Probably correct", negative for "Likely/Definitely incorrect", "Unsure" and
    claims without evidence dropped, repeats once."""
    pos = {"Definitely correct", "Probably correct"}
    neg = {"Likely incorrect", "Definitely incorrect"}
    rows, seen = [], set()
    for path in find(data, "*.medicine.jsonl"):
        for r in read_jsonl(path):
            for answer in (r.get("answers") or {}).values():
                for c in answer.get("claims") or []:
                    label = c.get("correctness")
                    evidence = [e for e in c.get("evidence") or [] if isinstance(e, str) and e.strip()]
                    key = (c.get("claim_string"), label)
                    if label not in pos | neg or not evidence or not c.get("claim_string") or key in seen:
                        continue
                    seen.add(key)
                    rows.append({"group": r["question"], "premise": "\n".join(evidence),
                                 "claim": c["claim_string"], "label": int(label in pos)})
    return sample(rows, limit)


def factscore_bios(data: Path) -> dict[str, list[dict]]:
    """FActScore labelled rows with annotations (the model did not abstain), per model file."""
    out = {}
    for model in FACTSCORE_MODELS:
        rows = [r for p in find(data, f"{model}*.jsonl") for r in read_jsonl(p)]
        out[model] = [r for r in rows if r.get("annotations")]
    return out


def factscore_facts(bios: list[dict], labels: frozenset[str] = frozenset({"S", "NS"}),
                    ) -> Iterator[tuple[str, str, int]]:
    """``(topic, fact, label)`` for every human fact whose label is in ``labels``; ``label``
    is 1 for ``S``."""
    for bio in bios:
        for a in bio["annotations"]:
            for f in a.get("human-atomic-facts") or []:
                if f.get("label") in labels:
                    yield bio["topic"], f["text"], int(f["label"] == "S")


def factscore_reference_texts(bios: dict[str, list[dict]], model: str) -> dict[str, str]:
    """Topic -> the stand-in reference for ``model``'s bios: for each *other* model that wrote
    ``S`` facts about the person, those facts joined as sentences; one line per model."""
    pages: dict[str, list[str]] = {}
    for other in FACTSCORE_MODELS:
        if other == model:
            continue
        for bio in bios.get(other, []):
            facts = [f["text"].strip() for a in bio["annotations"]
                     for f in a.get("human-atomic-facts") or [] if f.get("label") == "S"]
            if facts:
                pages.setdefault(bio["topic"], []).append(" ".join(facts))
    return {t: "\n".join(texts) for t, texts in pages.items()}


def build_factscore_reference(bios: dict[str, list[dict]], model: str, db: Path) -> None:
    """A FActScore-format SQLite (``documents(title, text)``) holding, per topic, the stand-in
    reference of ``factscore_reference_texts``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    if db.exists():
        db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE documents (title PRIMARY KEY, text)")
        conn.executemany("INSERT INTO documents VALUES (?, ?)",
                         list(factscore_reference_texts(bios, model).items()))
