"""Builders of scored runs for the report and gate tests, and a headless Chromium to load pages.

Rows come from ``ScoredResponse.to_dict``, so the tests read exactly what ``halt-eval score``
and the lm-eval tasks serialize, without any judge installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from halt_eval.types import Fragment, Response, ScoredResponse, Verdict

MARKER = "Unsure from Here"
#: Evidence every fragment shares (a retrieved document), long enough to be stored once.
SHARED_PASSAGE = "Ada Lovelace (1815-1852) was an English mathematician, known for her notes on the Analytical Engine."
#: lm-eval writes these beside ``details`` in each sample row.
LMEVAL_TOP_KEYS = ("correctness", "completeness", "f1", "abstained", "n_given", "n_correct")
LMEVAL_STAMP = "2026-11-26T10-00-00.000001"
#: ``--virtual-time-budget`` makes ``--dump-dom`` wait until the page's asynchronous work (the
#: report decompresses its samples with ``DecompressionStream``) is done; idle time is skipped.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--virtual-time-budget=30000")
CHROMIUM_TIMEOUT_S = 90


def require_tool(tool: str, install: str) -> str:
    """The path of ``tool``; skip the test without it, or fail under ``CI=true``."""
    found = shutil.which(tool)
    if found:
        return found
    message = f"{tool} not found: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def browse(page: Path, *extra: str, fragment: str = "") -> str:
    """Load ``page`` in headless Chromium (``$HALT_CHROMIUM`` or ``chromium``) and return the
    DOM after its scripts ran."""
    browser = os.environ.get("HALT_CHROMIUM") or require_tool("chromium", "apt-get install -y chromium")
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, *extra, "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True,
    )
    return done.stdout


def scored_row(doc_id: str, labels: Sequence[str], *, task: str = "halt_bio", domain: str = "bio",
               after_marker: str | None = None, n_desired: int | None = None,
               prompt: str = "Who was Ada Lovelace?") -> dict[str, Any]:
    """One serialized row whose fragments are sentences ``Claim k.`` judged ``labels[k]``.

    Args:
        doc_id: The document id.
        labels: One verdict label per fragment.
        task: Task name.
        domain: Domain name.
        after_marker: When given, the answer ends with the marker and then this text.
        n_desired: Fragments a complete answer needs; ``len(labels)`` by default.
        prompt: The question.
    """
    pieces, frags, verdicts, pos = [], [], [], 0
    for k, label in enumerate(labels):
        sentence = f"Claim {k} about {doc_id}."
        frags.append(Fragment(k, sentence, (pos, pos + len(sentence)), "independent"))
        verdicts.append(Verdict(label, "bm25@1", "supported" if label == "correct" else "contradicted",
                                f"explanation of claim {k}", {"passage": f"passage for claim {k}", "document": SHARED_PASSAGE}))
        pieces.append(sentence)
        pos += len(sentence) + 1
    text = " ".join(pieces)
    marker_offset = None
    if after_marker is not None:
        marker_offset = len(text) + 1 if text else 0
        text = (text + " " if text else "") + MARKER + " " + after_marker
    response = Response(doc_id, domain, prompt, text, {"passages": ["ref"]}, task=task)  # type: ignore[arg-type]
    return ScoredResponse(response, tuple(frags), tuple(verdicts),
                          abstained=marker_offset is not None or not frags,
                          n_desired=len(labels) if n_desired is None else n_desired,
                          marker_offset=marker_offset).to_dict()


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as JSONL and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_lmeval_dir(root: Path, model: str, rows_by_task: dict[str, Sequence[dict[str, Any]]],
                     stamp: str = LMEVAL_STAMP) -> Path:
    """Lay rows out as ``lm_eval --output_path root --log_samples`` with the halt tasks would.

    As ``halt_eval.lmeval.process_results`` does, undefined metrics are NaN, and ``prompt``,
    ``reference`` and ``response`` are left out of ``details`` (they are in ``doc`` and
    ``resps``). Returns ``root``.
    """
    model_dir = root / model.replace("/", "__")
    model_dir.mkdir(parents=True, exist_ok=True)
    results = {"results": {}, "configs": {}, "model_name": model, "config": {"model": "hf"}}
    for task, rows in rows_by_task.items():
        samples = []
        for i, row in enumerate(rows):
            top = {k: float("nan") if row[k] is None else row[k] for k in LMEVAL_TOP_KEYS}
            details = {k: v for k, v in row.items()
                       if k not in ("fragments", "prompt", "reference", "response")}
            doc = {"id": row["id"], "task": task, "domain": row["domain"], "source": "test",
                   "prompt": row["prompt"], "reference": json.dumps(row["reference"])}
            samples.append({"doc_id": i, "doc": doc, "target": "",
                            "arguments": [[row["prompt"], {}]], "resps": [[row["response"]]],
                            "filtered_resps": [row["response"]], **top,
                            "micro_correctness": [row["n_correct"], row["n_given"]],
                            "fragments": row["fragments"], "details": details})
        write_jsonl(model_dir / f"samples_{task}_{stamp}.jsonl", samples)
        results["results"][task] = {"alias": task, "correctness,none": 0.0}
        results["configs"][task] = {"task": task}
    (model_dir / f"results_{stamp}.json").write_text(json.dumps(results), encoding="utf-8")
    return root
