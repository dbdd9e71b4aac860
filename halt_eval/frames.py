"""Scored rows as pandas DataFrames, for analysis in a notebook.

    from halt_eval.frames import to_pandas
    from halt_eval.runs import load_run

    run = load_run("results/ckpt")             # a score JSONL or an lm-eval output folder
    df = to_pandas(run)                          # one row per answer: the catalogue's metrics
    df.groupby("task")[["correctness", "completeness", "f1"]].mean()
    frags = to_pandas(run, fragments=True)       # one row per fragment: verdict, reason, judge
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from halt_eval.types import ScoredResponse

if TYPE_CHECKING:
    import pandas as pd

    from halt_eval.runs import Run


def _rows(source: Run | Iterable[ScoredResponse]) -> list[ScoredResponse]:
    tasks = getattr(source, "tasks", None)
    if tasks is not None:
        return [row for rows in tasks.values() for row in rows]
    return list(source)


def to_pandas(source: Run | Iterable[ScoredResponse], *, fragments: bool = False) -> pd.DataFrame:
    """A DataFrame of scored rows.

    Args:
        source: A ``Run`` (``halt_eval.runs.load_run``) or scored responses.
        fragments: One row per fragment (``index``, ``text``, ``verdict``, ``reason``, ``judge``
            beside the answer's ``task``, ``id`` and ``sample``) instead of one per answer.

    Returns:
        Per answer: ``task``, ``id``, ``sample``, ``domain``, the counts and metrics
        (undefined values as NaN), ``abstained``, ``rules_version`` and ``error``.
    """
    import pandas as pd

    records: list[dict[str, Any]] = []
    for row in _rows(source):
        r = row.response
        key = {"task": r.task, "id": r.id, "sample": row.sample or 0}
        if fragments:
            records += [{**key, "index": f.index, "text": f.text, "verdict": v.label,
                         "reason": v.reason, "judge": v.judge}
                        for f, v in zip(row.fragments, row.verdicts)]
            continue
        records.append({**key, "domain": r.domain, "n_given": row.n_given, "n_correct": row.n_correct,
                        "n_desired": row.n_desired, "correctness": row.correctness,
                        "completeness": row.completeness, "f1": row.f1, "abstained": row.abstained,
                        "rules_version": row.rules_version, "error": row.error})
    frame = pd.DataFrame.from_records(records)
    for column in ("correctness", "completeness", "f1"):
        if column in frame:
            frame[column] = frame[column].astype(float)  # None -> NaN: pandas' means skip it
    return frame
