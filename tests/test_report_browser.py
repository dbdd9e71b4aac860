"""The report in a real headless Chromium: the page draws its table, plots and fragments, the
filters read the URL, a click on a verdict opens its evidence, and a screenshot is taken.

Needs the Debian ``chromium`` package (or ``$HALT_CHROMIUM``). Without it the tests skip, except
under ``CI=true``, where they fail: CI must install the browser.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from halt_eval.runs import load_run
from halt_eval.reports.render import render
from halt_runs import SHARED_PASSAGE, browse, scored_row, write_jsonl, write_lmeval_dir

#: Screenshot viewport in CSS pixels; tall enough for the table, the plots and a first sample.
WINDOW = (1280, 1800)
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'
#: Appended to a copy of the report: clicks the first incorrect fragment in the answer text.
CLICK_SCRIPT = ('<script>document.querySelector("mark.frag.incorrect").click();'
                'document.body.dataset.opened = document.querySelectorAll('
                '"details.frag[open] .evidence").length;</script>')


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """Two runs (a score JSONL folder and an lm-eval folder) rendered to one page."""
    root = tmp_path_factory.mktemp("browser")
    a = [scored_row("1", ["correct", "incorrect", "unverifiable"], after_marker="I would guess 1815."),
         scored_row("2", ["correct", "correct"], prompt=HOSTILE),
         scored_row("3", [], after_marker=HOSTILE)]
    b = [scored_row("1", ["correct", "correct", "correct"]),
         scored_row("2", ["incorrect", "correct"], prompt=HOSTILE),
         scored_row("3", ["correct"])]
    m = [scored_row("9", ["correct", "incorrect"], task="halt_math", domain="math")]
    write_jsonl(root / "ckpt-100" / "bio.jsonl", a)
    write_jsonl(root / "ckpt-100" / "math.jsonl", m)
    write_lmeval_dir(root / "lm", "org/ckpt-200", {"halt_bio": b, "halt_math": m})
    page = root / "report.html"
    page.write_text(render([load_run(root / "ckpt-100"), load_run(root / "lm")]), encoding="utf-8")
    return page


def test_the_page_draws_its_table_plots_and_coloured_fragments(report):
    dom = browse(report)
    assert len(re.findall(r'<tr class="[^"]*" data-task=', dom)) == 4
    assert dom.count('<svg class="plot"') == 2 and dom.count('<g class="point"') == 4
    assert dom.count("<article") == 8  # every sample fits on the first page
    for label in ("correct", "incorrect", "unverifiable"):
        assert f'<mark class="frag {label}"' in dom and f'<details class="frag"' in dom
    assert re.search(r'<span class="abstained-text">Unsure from Here I would guess 1815\.</span>', dom)
    assert re.search(r'<body[^>]* data-script-ms="[\d.]+" data-ready-ms="[\d.]+"', dom)


def test_model_text_is_shown_as_text_not_run(report):
    dom = browse(report)
    assert not re.search(r"<body[^>]*data-pwned", dom)
    assert "&lt;img src=x onerror=" in dom and "<img" not in dom


def test_the_url_fragment_filters_by_verdict_run_and_task(report):
    assert browse(report, fragment="#verdict=incorrect").count("<article") == 4
    assert browse(report, fragment="#verdict=incorrect&run=1").count("<article") == 2
    assert browse(report, fragment="#task=halt_math&run=0").count("<article") == 1
    assert browse(report, fragment="#verdict=empty").count("<article") == 1


def test_a_click_on_a_verdict_opens_its_evidence(report, tmp_path):
    clicked = tmp_path / "clicked.html"
    clicked.write_text(report.read_text().replace("</body>", CLICK_SCRIPT + "</body>"))
    dom = browse(clicked)
    assert 'data-opened="1"' in dom
    assert "passage for claim 1" in dom and "explanation of claim 1" in dom
    assert SHARED_PASSAGE in dom  # a shared string is looked up in the table


def test_a_screenshot_of_the_report_is_taken(report):
    shot = report.with_suffix(".png")
    browse(report, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == WINDOW
