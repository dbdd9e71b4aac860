"""Report and gate on runs written by ``halt-eval score`` itself (code domain, real sandbox).

The answers in ``cases/report_code_answers.jsonl`` are scored by the CLI into two runs; the
gate must see the candidate's drop and the report must show its fragments in Chromium.
Needs bubblewrap (the code sandbox) and chromium; under ``CI=true`` their absence fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from halt_runs import browse

from halt_eval.cli import main


@pytest.fixture(scope="module")
def scored(code_report_runs) -> tuple[Path, Path, list[dict]]:
    """Baseline and candidate folders scored by ``halt-eval score --domain code``."""
    return code_report_runs


def test_the_scored_rows_carry_what_each_case_expects(scored):
    base, cand, cases = scored
    for side, path in (("baseline", base), ("candidate", cand)):
        rows = {r["id"]: r for r in map(json.loads, (path / "code.jsonl").read_text().splitlines())}
        for c in cases:
            row, want = rows[c["name"]], c["expected"][side]
            if want == "abstained":
                assert row["abstained"] and row["marker_offset"] is not None, c["why"]
            else:
                assert {f["verdict"] for f in row["fragments"]} >= {want}, c["why"]


def test_the_gate_compares_the_two_scored_runs(scored, tmp_path):
    base, cand, _ = scored
    out = tmp_path / "verdict.json"
    code = main(["gate", "--baseline", str(base), "--candidate", str(cand), "--resamples", "1000",
                 "--json", str(out)])
    verdict = json.loads(out.read_text())
    assert code == verdict["exit_code"]
    f1 = next(m for m in verdict["tasks"][0]["metrics"] if m["metric"] == "f1")
    assert f1["change"] < 0 and verdict["tasks"][0]["n_pairs"] == 3


def test_the_report_of_the_scored_runs_shows_their_fragments(scored, tmp_path):
    base, cand, _ = scored
    page = tmp_path / "report.html"
    assert main(["report", str(base), str(cand), "-o", str(page)]) == 0
    dom = browse(page)
    assert dom.count("<article") == 6
    assert '<mark class="frag incorrect"' in dom
    assert '<span class="abstained-text">Unsure from Here' in dom
