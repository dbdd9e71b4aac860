"""Human-labelled claim sets in their upstream formats, turned into judge features.

Shared by ``claims_judge.py`` (validation) and ``train_claims_judge.py`` (the shipped
classifier). Every loader searches ``--data`` recursively for the upstream file names, so
the shared data tree or any copy of the upstream files works.

Sets and what a positive label means:

- ``kqa``: K-QA ``NLI_medical_annotator*.csv``; the claim is a physician statement, the
  premise the LLM answer; positive when the physicians' majority label is ``Entailment``.
  Evidence: the answer, chunked and ranked by bm25 (the med coverage path).
- ``stance``: Factcheck-GPT ``subtask3_claim_evidence_stance.jsonl``; positive for
  ``completely-support`` and ``partially-support``. Evidence: the given passage.
- ``expertqa``: ExpertQA medicine claims with a ``correctness`` label and evidence;
  positive for "Definitely/Probably correct", negative for "Likely/Definitely incorrect",
  "Unsure" dropped. Evidence: the cited passages.
- ``factscore``: FActScore's human facts labelled ``S`` (positive) or ``NS``; ``IR`` facts
  dropped. Evidence: the topic's document in a SQLite built per model from the ``S`` facts
  of the *other* models' bios of the same person (``build_factscore_reference``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The readers of the upstream files live in the package (``halt-eval audit`` uses them too).
from halt_eval.labelled import (  # noqa: F401  (re-exported for the benchmark scripts)
    FACTSCORE_MODELS,
    SEED,
    build_factscore_reference,
    expertqa_rows,
    factscore_bios,
    factscore_facts,
    find,
    kqa_rows,
    stance_rows,
)

#: Inverse L2 strength: strong, for 14 correlated features and 202 K-QA rows. Chosen on K-QA
#: dev (grouped-CV AUROC 0.792 at C=0.01, 0.788 at 0.03, 0.780 at 0.1, 0.774 at 1); FActScore
#: does not care (0.738 at every C).
LOGISTIC_C = 0.01
#: Folds of the grouped cross-validation (groups: question, claim or topic).
CV_FOLDS = 5


@dataclass
class ClaimSet:
    """Feature rows of one labelled set.

    Attributes:
        name: ``kqa``, ``stance``, ``expertqa`` or ``factscore``.
        X: Feature rows (``FEATURES`` order).
        y: 1 for supported / entailed.
        groups: Group key per row (question, claim or topic) for grouped CV.
        units: Per-row unit for aggregate scores (FActScore: ``model|topic`` of the bio).
        contradicted: The judge's contradiction flag per row (numbers, polarity).
        conflicts: The judge's entity-conflict flag per row (``entity_conflicts``).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    groups: list[str]
    units: list[str] = field(default_factory=list)
    contradicted: np.ndarray | None = None
    conflicts: np.ndarray | None = None


def save_set(s: ClaimSet, path: Path) -> None:
    """Write a feature set to ``path`` (``.npz``)."""
    np.savez_compressed(path, name=s.name, X=s.X, y=s.y, groups=np.array(s.groups, dtype=object),
                        units=np.array(s.units, dtype=object), contradicted=s.contradicted,
                        conflicts=s.conflicts)


def load_set(path: Path) -> ClaimSet:
    """Read a feature set written by ``save_set``."""
    z = np.load(path, allow_pickle=True)
    return ClaimSet(str(z["name"]), z["X"], z["y"], list(z["groups"]), list(z["units"]), z["contradicted"],
                    z["conflicts"] if "conflicts" in z.files else np.zeros(len(z["y"]), dtype=bool))


def cached(cache: Path | None, key: str, build) -> ClaimSet:
    """``build()``, or its result saved under ``cache`` by an earlier run with the same ``key``.

    The key must name everything the features depend on (feature list, top_k, limits).
    """
    if cache is None:
        return build()
    import hashlib

    path = cache / f"{key.split('|')[0]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        return load_set(path)
    s = build()
    cache.mkdir(parents=True, exist_ok=True)
    save_set(s, path)
    return s


def all_sets(data: Path, verifier, *, top_k: int, stance_limit: int | None, expertqa_limit: int | None,
             limit: int | None, cache: Path | None, judge_version: str, workdir: Path) -> dict[str, ClaimSet]:
    """Feature sets of every labelled set found under ``data`` (``cached`` when ``cache`` is set)."""
    from halt_eval.judges.retrieval_claims import FEATURES

    # "entity": the rows carry the entity-conflict flags (older caches do not)
    base = f"{','.join(FEATURES)}|{judge_version}|entity|{top_k}|{data.resolve()}"
    sets = {}
    for name, rows in (("kqa", kqa_rows(data)), ("stance", stance_rows(data, stance_limit)),
                       ("expertqa", expertqa_rows(data, expertqa_limit))):
        if rows:
            sets[name] = cached(cache, f"{name}|{base}|{len(rows)}",
                                lambda n=name, r=rows: pair_set(n, r, verifier, top_k))
    fs = cached(cache, f"factscore|{base}|{limit}",
                lambda: factscore_set(data, verifier, top_k, workdir, limit))
    if len(fs.y):
        sets["factscore"] = fs
    return sets


def pair_set(name: str, rows: list[dict], verifier, top_k: int) -> ClaimSet:
    """Features of claim/premise pairs, the premise chunked and ranked by bm25 per claim."""
    from halt_eval.judges.retrieval_claims import retrieve

    X, flags, conflicts = [], [], []
    for r in rows:
        found = retrieve([r["claim"]], {"topic": "", "passages": [r["premise"]]}, top_k=top_k)
        x, d = verifier.features([r["claim"]], found.passages)
        X.append(x[0])
        flags.append(d[0]["contradicted"])
        conflicts.append(d[0].get("entity_conflict") is not None)
    return ClaimSet(name, np.array(X).reshape(len(rows), -1), np.array([r["label"] for r in rows]),
                    [r["group"] for r in rows], [r["group"] for r in rows], np.array(flags),
                    np.array(conflicts, dtype=bool))


def factscore_set(data: Path, verifier, top_k: int, workdir: Path, limit: int | None) -> ClaimSet:
    """Features of FActScore's human facts against the other-models reference."""
    from halt_eval.judges.retrieval_claims import Corpus, retrieve

    bios = factscore_bios(data)
    X, y, groups, units, flags, conflicts = [], [], [], [], [], []
    for model in FACTSCORE_MODELS:
        db = workdir / f"factscore_ref_{model}.db"
        build_factscore_reference(bios, model, db)
        corpus = Corpus(db)
        for bio in bios[model][:limit]:
            facts = [(f, lab) for t, f, lab in factscore_facts([bio])]
            if not facts:
                continue
            try:
                found = retrieve([f for f, _ in facts], {"topic": bio["topic"]}, corpus=corpus, top_k=top_k)
            except ValueError:  # no other model wrote S facts for this person
                continue
            x, d = verifier.features([f for f, _ in facts], found.passages, bio["topic"])
            X.extend(x)
            y.extend(lab for _, lab in facts)
            groups.extend(bio["topic"] for _ in facts)
            units.extend(f"{model}|{bio['topic']}" for _ in facts)
            flags.extend(e["contradicted"] for e in d)
            conflicts.extend(e.get("entity_conflict") is not None for e in d)
    return ClaimSet("factscore", np.array(X), np.array(y), groups, units, np.array(flags),
                    np.array(conflicts, dtype=bool))


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float = LOGISTIC_C) -> dict:
    """Standardised L2 logistic regression; returns JSON-safe parameters."""
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C, max_iter=2000).fit((X - mean) / scale, y)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": clf.coef_[0].tolist(),
            "intercept": float(clf.intercept_[0])}


def predict(params: dict, X: np.ndarray) -> np.ndarray:
    """``p_supported`` from ``fit_logistic`` parameters (the judge's own formula)."""
    z = (X - np.array(params["mean"])) / np.array(params["scale"])
    return 1.0 / (1.0 + np.exp(-(z @ np.array(params["coef"]) + params["intercept"])))


def accuracy_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold with the best accuracy on ``(p, y)``."""
    cands = np.unique(np.round(p, 3))
    accs = [((p >= t) == y).mean() for t in cands]
    return float(cands[int(np.argmax(accs))])


def bio_error_threshold(p: np.ndarray, y: np.ndarray, units: list[str]) -> float:
    """The threshold with the least mean per-bio score error on ``(p, y)``."""
    idx: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        idx.setdefault(u, []).append(i)
    groups = [np.array(v) for v in idx.values()]
    best, best_err = 0.5, float("inf")
    for t in np.linspace(0.05, 0.95, 91):
        err = np.mean([abs((p[g] >= t).mean() - y[g].mean()) for g in groups])
        if err < best_err:
            best, best_err = float(t), err
    return best


def grouped_folds(groups: list[str], k: int = CV_FOLDS) -> list[np.ndarray]:
    """Test-row indices of ``k`` folds with no group split across folds."""
    keys = sorted(set(groups))
    random.Random(SEED).shuffle(keys)
    fold_of = {g: i % k for i, g in enumerate(keys)}
    return [np.array([i for i, g in enumerate(groups) if fold_of[g] == f]) for f in range(k)]


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN with one class only."""
    from scipy.stats import rankdata

    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if not pos or not neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
