"""The baseline-versus-candidate diff report and ``halt-eval gate --report``: per-task changes from
the gate, documents sorted by F1 change with verdict changes marked, and the Markdown naming the
worst documents. The last tests score real ``halt_code`` answers and open the diff in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from halt_eval.reports.diff import match_fragments, render_diff
from halt_runs import browse, scored_row, write_jsonl

from halt_eval.cli import main
from halt_eval.gate import document_changes, gate, pair_runs
from halt_eval.runs import load_run
from halt_eval.types import ScoredResponse


def _runs(tmp_path: Path, n: int = 20, dropped: int = 15):
    """``n`` documents of three correct fragments in the baseline; the candidate gets the last two
    fragments of the first ``dropped - 1`` documents wrong, only the last one of document
    ``dropped - 1``, and leaves the rest unchanged."""
    base = [scored_row(str(i), ["correct", "correct", "correct"]) for i in range(n)]
    cand = [scored_row(str(i), ["correct", "incorrect", "incorrect"] if i < dropped else ["correct"] * 3)
            for i in range(n)]
    # One document loses only its last fragment: a smaller drop, listed after the larger ones.
    cand[dropped - 1] = scored_row(str(dropped - 1), ["correct", "correct", "incorrect"])
    write_jsonl(tmp_path / "base" / "bio.jsonl", base)
    write_jsonl(tmp_path / "cand" / "bio.jsonl", cand)
    return load_run(tmp_path / "base"), load_run(tmp_path / "cand")


def test_documents_are_sorted_by_f1_change_largest_drop_first(tmp_path):
    b, c = _runs(tmp_path)
    (b_rows, c_rows), = pair_runs(b, c).values()
    changes = document_changes("halt_bio", b_rows, c_rows)
    assert [d.doc_id for d in changes[:14]] == [str(i) for i in range(14)]
    assert changes[14].doc_id == "14" and changes[14].change == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3) - 1)
    assert all(d.change == 0 for d in changes[15:])
    assert changes[0].change < changes[14].change < 0


def test_a_fragment_with_the_same_text_and_another_verdict_is_marked_changed(tmp_path):
    b, c = _runs(tmp_path)
    (b_rows, c_rows), = pair_runs(b, c).values()
    fb, fc = match_fragments(b_rows[0], c_rows[0])
    assert [f.change for f in fb] == ["", "changed", "changed"]
    assert [(f.number, f.label, f.other_label) for f in fc if f.change] == [(2, "incorrect", "correct"),
                                                                          (3, "incorrect", "correct")]


def test_the_diff_page_lists_the_gate_numbers_then_changed_documents_worst_first(tmp_path):
    b, c = _runs(tmp_path)
    results = gate(b, c, resamples=1000)
    html = render_diff(b, c, results, resamples=1000)
    f1 = next(m for m in results[0].metrics if m.metric == "f1")
    assert f1.status == "regression"
    row = re.search(r'<tr class="regression" data-metric="f1">(.*?)</tr>', html, re.S).group(1)
    assert f"[{f1.ci[0]:+.3f}, {f1.ci[1]:+.3f}]".replace("-", "\u2212") in row
    ids = re.findall(r'<article class="doc" data-id="([^"]+)"', html)
    assert ids == [str(i) for i in range(15)]  # the five unchanged documents are left out
    assert "5 unchanged" in html
    assert html.count('<li class="changed"') == 2 * (2 * 14 + 1)  # both sides: two flips in 14 documents, one in the 15th
    assert "becomes incorrect in the candidate" in html and "was correct in the baseline" in html


def test_model_text_in_the_diff_is_escaped(tmp_path):
    hostile = '</span><script>alert(1)</script>'
    write_jsonl(tmp_path / "b.jsonl", [scored_row("1", ["correct"], prompt=hostile), scored_row("2", ["correct"])])
    write_jsonl(tmp_path / "c.jsonl", [scored_row("1", ["incorrect"], prompt=hostile), scored_row("2", ["correct"])])
    html = render_diff(load_run(tmp_path / "b.jsonl"), load_run(tmp_path / "c.jsonl"), resamples=200)
    assert "<script>" not in html and "&lt;script&gt;alert(1)" in html


def test_gate_report_writes_the_diff_and_the_markdown_names_the_worst_documents(tmp_path, capsys):
    _runs(tmp_path)
    page, md = tmp_path / "diff.html", tmp_path / "gate.md"
    code = main(["gate", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "cand"),
                 "--resamples", "1000", "--report", str(page), "--markdown", str(md)])
    assert code == 1
    text = md.read_text()
    worst = re.search(r"- halt_bio: (.*)", text).group(1)
    # The five largest drops, by id, with both F1 values and the change.
    assert re.findall(r"`(\d+)`", worst) == ["0", "1", "2", "3", "4"]
    assert "F1 1.000 \u2192 0.333 (\u22120.667)" in worst
    assert str(page) in text
    assert re.findall(r'<article class="doc" data-id="([^"]+)"', page.read_text())[0] == "0"


def test_the_report_command_writes_the_diff_and_refuses_unpaired_runs(tmp_path, capsys):
    _runs(tmp_path)
    out = tmp_path / "d.html"
    assert main(["report", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "cand"),
                 "-o", str(out)]) == 0
    assert '<article class="doc" data-id="0"' in out.read_text()
    write_jsonl(tmp_path / "other.jsonl", [scored_row("x", ["correct"])])
    assert main(["report", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "other.jsonl"),
                 "-o", str(out)]) == 2
    assert "unpaired runs" in capsys.readouterr().err


def test_the_diff_of_two_real_code_runs_lists_the_regressed_document_first(code_report_runs, tmp_path):
    base, cand, _ = code_report_runs
    page = tmp_path / "diff.html"
    assert main(["report", "--baseline", str(base), "--candidate", str(cand), "-o", str(page)]) == 0
    dom = browse(page)
    b_rows = {r["id"]: ScoredResponse.from_dict(r) for r in map(json.loads, (base / "code.jsonl").read_text().splitlines())}
    c_rows = {r["id"]: ScoredResponse.from_dict(r) for r in map(json.loads, (cand / "code.jsonl").read_text().splitlines())}
    drops = sorted(b_rows, key=lambda i: (c_rows[i].f1 or 0) - (b_rows[i].f1 or 0))
    ids = re.findall(r'<article class="doc" data-id="([^"]+)"', dom)
    assert ids[0] == drops[0] == "square_right_then_wrong"
    first = dom.split('<article class="doc"')[1]
    # The rewritten line is the candidate's own; the unchanged line after it flips to incorrect.
    assert re.search(r'class="frag incorrect only"[^>]*>\s*result = n \+ n', first)
    assert re.search(r'class="frag incorrect changed"[^>]*>\s*return result', first)
