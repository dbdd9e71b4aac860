"""Train the retrieval judge's logistic classifier (``judges/models/claims_lr.json``).

Two profiles, each a standardised L2 logistic regression over the judge's ``FEATURES``:

- ``bio``: FActScore dev human facts (S vs NS) against the other-models reference
  (see ``claims_data``); threshold chosen for the least mean per-bio score error.
- ``entail``: K-QA dev physician NLI pairs (answer entails statement or not); threshold
  chosen for the best accuracy. Adding ExpertQA's medicine claims (93% positive, web
  evidence) lowered K-QA's grouped-CV AUROC from 0.78 to 0.70, so they are left out.

Only the dev halves exist in the shared data, so the classifier is fitted on the same rows
that ``claims_judge.py`` reports; that script also prints grouped cross-validated figures,
which are the honest estimate.

Usage:
    python benchmarks/train_claims_judge.py --data ../shared/data [--out judges/models/claims_lr.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import claims_data as cd  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "judges" / "models" / "claims_lr.json"


def train(sets: dict[str, cd.ClaimSet]) -> dict:
    """Fit both profiles on ``sets``; returns the JSON document."""
    from halt_eval.judges.retrieval_claims import FEATURES

    profiles = {}
    fs = sets["factscore"]
    bio = cd.fit_logistic(fs.X, fs.y)
    bio["threshold"] = cd.bio_error_threshold(cd.predict(bio, fs.X), fs.y, fs.units)
    bio["trained_on"] = {"factscore": int(len(fs.y))}
    profiles["bio"] = bio
    kqa = sets["kqa"]
    entail = cd.fit_logistic(kqa.X, kqa.y)
    entail["threshold"] = cd.accuracy_threshold(cd.predict(entail, kqa.X), kqa.y)
    entail["trained_on"] = {"kqa": int(len(kqa.y))}
    profiles["entail"] = entail
    return {"features": list(FEATURES), "profiles": profiles,
            "note": "fitted on the dev halves of the shared data (held-out halves not available)",
            "created": dt.date.today().isoformat()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--stance-limit", type=int, default=300)
    ap.add_argument("--expertqa-limit", type=int, default=150, help="ExpertQA claims (sampled, seed 0)")
    ap.add_argument("--cache", type=Path, default=None, help="feature-set cache shared with claims_judge.py")
    args = ap.parse_args(argv)

    from halt_eval.judges.retrieval_claims import RetrievalJudge, Verifier

    verifier = Verifier(classifier=Path("/nonexistent"))  # features only: no classifier needed
    with tempfile.TemporaryDirectory() as tmp:
        sets = cd.all_sets(args.data, verifier, top_k=args.top_k, stance_limit=args.stance_limit,
                           expertqa_limit=args.expertqa_limit,
                           limit=None, cache=args.cache, judge_version=RetrievalJudge.version,
                           workdir=Path(tmp))
    missing = {"kqa", "factscore"} - set(sets)
    if missing:
        print(f"missing labelled sets under {args.data}: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    doc = train(sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for name, p in doc["profiles"].items():
        print(f"{name}: threshold {p['threshold']:.3f}, trained on {p['trained_on']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
