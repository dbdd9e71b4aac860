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
#: Calls its argument once the report has drawn its first page (at once if it has).
WHEN_READY = ('(function (go) { if (document.body.dataset.readyMs) go(); '
              'else document.addEventListener("halt-ready", go); })')
#: Appended to a copy of the report: once the first page is drawn, clicks the first incorrect
#: fragment in the answer text.
CLICK_SCRIPT = ('<script>' + WHEN_READY + '(function () {'
                'document.querySelector("mark.frag.incorrect").click();'
                'document.body.dataset.opened = document.querySelectorAll('
                '"details.frag[open] .evidence").length; });</script>')


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
        assert f'<mark class="frag {label}"' in dom and '<details class="frag"' in dom
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


#: Rows written by ``halt-eval score`` (sympy, sandbox and retrieval judges) for one answer per
#: domain: a math answer with a false claim and a wrong final answer, a code answer with prose and
#: a wrong line, a biography with a greeting and an unsupported date, a medical answer with a
#: claim that conflicts with a reference statement.
EVIDENCE_ROWS = Path(__file__).parent / "cases" / "report_evidence"
#: Appended to a copy of the report: once the first page is drawn, opens the evidence of every
#: fragment.
OPEN_ALL_SCRIPT = ('<script>' + WHEN_READY + '(function () {'
                   'document.querySelectorAll("details.frag").forEach(function (d) '
                   '{ d.fill(); d.open = true; }); });</script>')


@pytest.fixture(scope="module")
def evidence_page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evidence")
    page = root / "evidence.html"
    html = render([load_run(EVIDENCE_ROWS, "real rows")])
    page.write_text(html.replace("</body>", OPEN_ALL_SCRIPT + "</body>"), encoding="utf-8")
    return page


def _card(dom: str, doc_id: str) -> str:
    """The HTML of the sample card whose header names ``doc_id``."""
    return next(a for a in dom.split("<article")[1:] if f'<span class="id">#{doc_id}</span>' in a)


def test_math_evidence_shows_the_claims_with_both_values_and_the_final_answer(evidence_page):
    card = _card(browse(evidence_page), "m1")
    row = re.search(r'<tr class="claim false">(.*?)</tr>', card).group(1)
    assert re.findall(r'<td class="expr">([^<]*)</td>', row) == ["3 + 4 = 8", "7", "8"]
    assert "does not hold" in row
    assert re.search(r'final answer </span><code class="given">6</code><span class="cmp not_equal"> \u2260 </span>'
                     r'<span class="muted">reference </span><code class="ref">5</code>', card)
    # One numbering: the false claim is fragment #2 in the list and in the later explanations.
    assert '<span class="num">#2</span><span class="badge incorrect">incorrect</span>' in card
    assert "follows the first incorrect fragment (#2)" in card and "(#1)" not in card


def test_code_evidence_shows_the_failing_test_its_values_and_the_blamed_line(evidence_page):
    card = _card(browse(evidence_page), "square_right_then_wrong")
    failure = card[card.index('<div class="code-failure">'):]
    assert "test #1: assert square(3) == 9" in failure
    assert re.search(r"<dt>expected</dt><dd><pre>9</pre></dd><dt>actual</dt><dd><pre>6</pre></dd>", failure)
    assert re.search(r'<dt>blamed line</dt><dd class="blamed"><pre>result = n \+ n</pre>', failure)
    # The prose before the program is shown as skipped, not silently left plain.
    assert '<span class="skipped" title="skipped: not a line of the program' in card
    assert '<span class="badge skipped">skipped</span> <span class="skipped">Here is the function:</span>' in card


def test_bio_and_med_evidence_mark_the_deciding_sentence_in_the_titled_passage(evidence_page):
    dom = browse(evidence_page)
    bio = _card(dom, "b1")
    assert '<div class="title">Ada Lovelace<span class="muted"> bm25' in bio
    assert '<mark class="span support">She was born in London.</mark>' in bio
    assert re.search(r'<span class="skipped" title="skipped: the splitter keeps claims only[^"]*">I hope this helps!</span>', bio)
    med = _card(dom, "k1")
    assert '<div class="title">statement' in med
    assert '<mark class="span conflict">Lexapro is not approved for use in pediatric patients less than 12 years of age.</mark>' in med


def test_a_screenshot_of_the_evidence_is_taken(evidence_page):
    shot = evidence_page.with_name("evidence.png")
    focus = evidence_page.with_name("focus.html")
    # Only the code and math samples, so their evidence fills the shot.
    focus.write_text(evidence_page.read_text())
    browse(focus, f"--screenshot={shot}", "--window-size=1280,2400", fragment="#task=halt_math")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1280, 2400)


def test_each_plot_exports_as_a_standalone_svg_and_a_png(report):
    import base64
    from urllib.parse import unquote
    dom = browse(report, "--virtual-time-budget=5000")
    svgs = re.findall(r'<a href="(data:image/svg\+xml;charset=utf-8,[^"]+)" data-format="svg"', dom)
    assert len(svgs) == 2
    svg = unquote(svgs[0].split(",", 1)[1].replace("&amp;", "&"))
    assert svg.startswith('<svg class="plot" xmlns="http://www.w3.org/2000/svg"')
    assert "<style>" in svg and svg.count("<circle") == 2  # both runs' points, with the plot's styles
    pngs = re.findall(r'<a href="data:image/png;base64,([^"]+)" data-format="png"', dom)
    assert len(pngs) == 2
    head = base64.b64decode(pngs[0])[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (760, 640)


def test_several_answers_to_one_prompt_are_grouped_under_it(tmp_path):
    rows = []
    for k, labels in enumerate((["correct"], ["incorrect"], ["correct", "correct"])):
        row = scored_row("q1", labels, prompt="Who was Ada Lovelace, in short?")
        row["sample"] = 2 - k  # written out of order: shown by sample index
        rows.append(row)
    rows.append(scored_row("q2", ["correct"]))
    write_jsonl(tmp_path / "s.jsonl", rows)
    page = tmp_path / "s.html"
    page.write_text(render([load_run(tmp_path / "s.jsonl")]), encoding="utf-8")
    dom = browse(page)
    assert dom.count('<section class="prompt-group">') == 1
    group = dom.split('<section class="prompt-group">')[1].split("</section>")[0]
    assert "3 answers to this prompt" in group and "Who was Ada Lovelace, in short?" in group
    assert re.findall(r"#q1 sample (\d)", group) == ["0", "1", "2"]
    assert "#q2" not in group and dom.count("<article") == 4


#: Appended to a copy of the report: once the first page is drawn, types a document id into the
#: search box as a reader would.
SEARCH_SCRIPT = ('<script>' + WHEN_READY + '(function () {'
                 'var q = document.getElementById("f-text"); q.value = "1999";'
                 'q.dispatchEvent(new Event("input")); });</script>')


def test_a_2000_sample_report_is_ready_after_one_chunk_and_shows_sample_1999_on_demand(tmp_path):
    rows = [scored_row(str(i), ["correct", "incorrect"] if i % 3 else ["correct"]) for i in range(2000)]
    page = tmp_path / "big.html"
    page.write_text(render([load_run(write_jsonl(tmp_path / "big.jsonl", rows))]), encoding="utf-8")
    assert page.read_text().count('<script type="application/octet-stream"') == 10
    dom = browse(page)
    body = re.search(r"<body[^>]*>", dom).group(0)
    # Ready with the first page drawn from the first of the ten chunks alone.
    assert re.search(r'data-ready-ms="[\d.]+"', body) and 'data-chunks-decoded="1"' in body
    assert dom.count("<article") == 25 and "1\u201325 of 2000 samples" in dom
    # The last page, linked: only its own chunk is decompressed.
    last = browse(page, fragment="#page=80")
    assert 'data-chunks-decoded="1"' in last and "1976\u20132000 of 2000 samples" in last
    assert _card(last, "1999").count('<mark class="frag') == 2
    # Searched for after the page is ready: every chunk is read, one sample matches.
    searched = page.with_name("searched.html")
    searched.write_text(page.read_text().replace("</body>", SEARCH_SCRIPT + "</body>"), encoding="utf-8")
    found = browse(searched)
    assert found.count("<article") == 1 and 'data-chunks-decoded="10"' in found
    assert "Claim 1 about 1999." in _card(found, "1999") and "1\u20131 of 1 samples" in found
