"""``halt-eval report`` rendered from serialized rows: structure, escaping of model text, and the
abstention marker. The browser checks are in ``test_report_browser.py``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from halt_eval.cli import main
from halt_eval.rules import RULES_VERSION
from halt_eval.runs import load_run
from halt_eval.reports.render import read_chunk, render
from halt_runs import MARKER, SHARED_PASSAGE, scored_row, write_jsonl, write_lmeval_dir

HOSTILE = '</script><img src=x onerror="alert(1)"><!-- & \u2028'


class _Collect(HTMLParser):
    """Start tags with their attributes, and the text of the data elements (the index and the
    chunks) by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: dict[str, str] = {}
        self._in_data: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        element_id = dict(attrs).get("id") or ""
        self._in_data = element_id if tag == "script" and element_id.startswith("halt-") else None

    def handle_endtag(self, tag):
        self._in_data = None

    def handle_data(self, data):
        if self._in_data:
            self.data[self._in_data] = self.data.get(self._in_data, "") + data

    @property
    def data_json(self) -> dict:
        """The index, with the chunks' samples, documents (``[task, id, prompt, reference,
        domain]``) and string tables joined as ``samples``, ``docs`` and ``chunk_strings``."""
        index = json.loads(self.data["halt-index"])
        chunks = [read_chunk(self.data[f"halt-chunk-{c}"]) for c in range(len(self.data) - 1)]
        docs = {}
        for chunk in chunks:
            docs.update({int(d): v for d, v in chunk["docs"].items()})
        return {**index, "samples": [s for chunk in chunks for s in chunk["samples"]],
                "docs": [[index["docTask"][d], index["docId"][d], *docs[d]] for d in sorted(docs)],
                "chunk_strings": [chunk["strings"] for chunk in chunks]}


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    return p


@pytest.fixture()
def two_runs(tmp_path):
    """A score-output folder and an lm-eval folder, two tasks each, one marker answer."""
    a = [scored_row("1", ["correct", "incorrect"], after_marker="maybe more"),
         scored_row("2", ["correct", "unverifiable", "correct"])]
    b = [scored_row("1", ["correct", "correct"]), scored_row("2", ["incorrect"])]
    m = [scored_row("7", ["correct"], task="halt_math", domain="math")]
    write_jsonl(tmp_path / "a" / "bio.jsonl", a)
    write_jsonl(tmp_path / "a" / "math.jsonl", m)
    write_lmeval_dir(tmp_path / "lm", "org/model-b", {"halt_bio": b, "halt_math": m})
    return [load_run(tmp_path / "a"), load_run(tmp_path / "lm")]


def test_the_summary_has_one_row_per_task_and_run_with_intervals(two_runs):
    html = render(two_runs)
    rows = [a for t, a in _parse(html).tags if t == "tr" and "data-task" in a]
    assert [(r["data-task"], r["data-run"]) for r in rows] == [
        ("halt_bio", "0"), ("halt_bio", "1"), ("halt_math", "0"), ("halt_math", "1")]
    # halt_bio of run a: correctness 0.5 and 2/3, mean 0.583; interval from two samples.
    assert re.search(r"<td>0\.583<span class=\"ci\">\[0\.500, 0\.667\]</span></td>", html)


def test_each_domain_has_a_plot_with_one_point_per_run(two_runs):
    tags = _parse(render(two_runs)).tags
    figures = [a["data-domain"] for t, a in tags if t == "figure"]
    points = [a["data-run"] for t, a in tags if t == "g" and a.get("class") == "point"]
    assert figures == ["bio", "math"]
    assert points == ["a", "org/model-b", "a", "org/model-b"]


def test_every_sample_and_fragment_travels_in_the_embedded_json(two_runs):
    data = _parse(render(two_runs)).data_json
    assert data["runs"] == ["a", "org/model-b"]
    assert len(data["samples"]) == 6
    # Prompts are stored once per document and shared by both runs.
    assert len(data["docs"]) == 3
    first = data["samples"][0]
    assert [f[2] for f in first["fr"]] == [0, 1]  # correct, incorrect
    assert first["fr"][0][4] is None  # fragment text equals the answer at its span
    assert first["fr"][1][7] == {"passage": "passage for claim 1", "document": "\u00010"}
    assert data["chunk_strings"] == [[SHARED_PASSAGE]]


def test_a_long_evidence_string_is_stored_once_and_a_lookalike_is_escaped(tmp_path):
    rows = [scored_row(str(i), ["correct", "incorrect"]) for i in range(3)]
    rows[0]["fragments"][0]["evidence"]["note"] = "\u0001" + "x" * 60
    html = render([load_run(write_jsonl(tmp_path / "r.jsonl", rows))])
    parsed = _parse(html)
    data = parsed.data_json
    chunk_text = json.dumps(read_chunk(parsed.data["halt-chunk-0"]))
    assert chunk_text.count(json.dumps(SHARED_PASSAGE)[1:-1]) == 1
    assert data["samples"][0]["fr"][0][7]["note"] == "\u0001\u0001" + "x" * 60


def test_text_after_the_marker_keeps_its_offset_and_no_fragment_reaches_it(two_runs):
    data = _parse(render(two_runs)).data_json
    s = data["samples"][0]
    assert s["a"] is True
    assert s["t"][s["m"]:] == f"{MARKER} maybe more"
    assert all(f[1] <= s["m"] for f in s["fr"])


def test_model_text_cannot_break_out_of_the_page(tmp_path):
    row = scored_row("x<1>", ["incorrect"], after_marker=HOSTILE, prompt=HOSTILE)
    row["fragments"][0]["evidence"] = {"log": HOSTILE}
    run = load_run(write_jsonl(tmp_path / "evil.jsonl", [row]), name='<b onmouseover="x">run</b>')
    html = render([run])
    assert "<img" not in html and "<!--" not in html and "<b onmouseover" not in html
    assert html.count("</script>") == 3  # the index's, the one chunk's and the script's own
    data = _parse(html).data_json
    assert data["samples"][0]["t"].endswith(HOSTILE)
    assert data["docs"][0][2] == HOSTILE and data["runs"] == ['<b onmouseover="x">run</b>']
    assert data["docId"] == ["x<1>"] and "x\\u003c1\\u003e" in html  # the index is escaped JSON


def test_samples_travel_in_compressed_chunks_behind_an_index_of_what_the_filters_need(tmp_path):
    rows = [scored_row(str(i), ["correct", "incorrect"] if i % 2 else ["correct"]) for i in range(450)]
    rows[3] = scored_row("3", [], after_marker="no idea")
    rows[5]["error"] = "judge crashed"
    rows[7]["sample"] = 0
    html = render([load_run(write_jsonl(tmp_path / "big.jsonl", rows))])
    parsed = _parse(html)
    chunk_ids = sorted((k for k in parsed.data if k.startswith("halt-chunk-")), key=lambda k: int(k.rsplit("-", 1)[1]))
    assert chunk_ids == ["halt-chunk-0", "halt-chunk-1", "halt-chunk-2"]  # 200 + 200 + 50 samples
    assert all(re.fullmatch(r"[A-Za-z0-9+/=]+", parsed.data[k]) for k in chunk_ids)
    assert [len(read_chunk(parsed.data[k])["samples"]) for k in chunk_ids] == [200, 200, 50]
    # Each chunk carries the documents of its own samples only.
    assert sorted(map(int, read_chunk(parsed.data["halt-chunk-1"])["docs"])) == list(range(200, 400))
    data = parsed.data_json
    assert len(data["sampleDoc"]) == len(data["sampleFlags"]) == len(data["samples"]) == 450
    assert [data["docId"][d] for d in data["sampleDoc"][:3]] == ["0", "1", "2"]
    flag = data["flags"]
    assert data["sampleFlags"][0] == flag["correct"]
    assert data["sampleFlags"][1] == flag["correct"] | flag["incorrect"]
    assert data["sampleFlags"][3] == flag["empty"] | flag["abstained"]
    assert data["sampleFlags"][5] & flag["error"] and data["sampleFlags"][7] & flag["sampled"]
    # Compressed: far smaller than the samples' JSON, even in base64.
    assert sum(len(parsed.data[k]) for k in chunk_ids) < len(json.dumps(data["samples"])) / 3


def test_a_nan_in_evidence_becomes_null_in_the_page(tmp_path):
    row = scored_row("1", ["correct"])
    row["fragments"][0]["evidence"]["cosine"] = float("nan")
    data = _parse(render([load_run(write_jsonl(tmp_path / "r.jsonl", [row]))])).data_json
    assert data["samples"][0]["fr"][0][7]["cosine"] is None


def test_an_answer_with_no_fragments_is_listed_as_empty_and_abstained(tmp_path):
    run = load_run(write_jsonl(tmp_path / "e.jsonl", [scored_row("1", [], after_marker="no idea")]))
    data = _parse(render([run])).data_json
    s = data["samples"][0]
    assert s["fr"] == [] and s["a"] is True and s["c"] is None and s["m"] == 0


def test_two_runs_with_one_name_are_told_apart_by_path(tmp_path):
    rows = [scored_row("1", ["correct"])]
    first = load_run(write_jsonl(tmp_path / "x" / "run.jsonl", rows))
    second = load_run(write_jsonl(tmp_path / "y" / "run.jsonl", rows))
    data = _parse(render([first, second])).data_json
    assert data["runs"] == [str(tmp_path / "x" / "run.jsonl"), str(tmp_path / "y" / "run.jsonl")]


def test_the_cli_writes_the_report_and_rejects_unreadable_input(tmp_path, capsys):
    run = write_jsonl(tmp_path / "r.jsonl", [scored_row("1", ["correct"])])
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out), "--name", "ckpt-1"]) == 0
    assert "ckpt-1" in out.read_text()
    assert main(["report", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert main(["report", str(run), str(run), "--name", "only-one"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_rendering_imports_no_judge(tmp_path):
    run = write_jsonl(tmp_path / "r.jsonl", [scored_row("1", ["correct"])])
    code = (
        "import sys\n"
        "from halt_eval.runs import load_run\n"
        "from halt_eval.reports.render import render\n"
        f"render([load_run({str(run)!r})])\n"
        "heavy = [m for m in sys.modules if m.startswith('halt_eval.judges') or m in ('sympy', 'bm25s', 'torch', 'lm_eval')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


def test_the_header_names_each_runs_rules_version_and_judge(tmp_path):
    spec = {"name": "bm25", "version": "1", "options": {"k": 3}}
    new = write_jsonl(tmp_path / "new.jsonl", [{**scored_row("1", ["correct"]), "judge_spec": spec}])
    old_row = {k: v for k, v in scored_row("1", ["correct"]).items() if k not in ("rules_version", "judge_spec")}
    old = write_jsonl(tmp_path / "old.jsonl", [{**old_row, "schema_version": 1}])
    html = render([load_run(new), load_run(old)])
    specs = re.findall(r'<span class="muted run-spec">(.*?)</span>', html)
    assert specs == [f"rules version {RULES_VERSION} &middot; judge bm25@1 {{&#34;options&#34;: {{&#34;k&#34;: 3}}}}",
                     "rules version 1 &middot; judge bm25@1 (no judge spec in the rows)"]


def _dependent_row(doc_id: str = "d") -> dict:
    """A math row whose second of three steps is wrong, with the dependent rule applied."""
    from halt_eval.rules import apply_dependent_rule
    from halt_eval.types import Fragment, Response, ScoredResponse, Verdict
    steps = ["x = 2.", "y = 5.", "x + y = 7."]
    frags, pos = [], 0
    for k, s in enumerate(steps):
        frags.append(Fragment(k, s, (pos, pos + len(s)), "dependent"))
        pos += len(s) + 1
    own = [Verdict("correct", "sympy", "equal", "", {}),
           Verdict("incorrect", "sympy", "not_equal", "", {}),
           Verdict("correct", "sympy", "equal", "", {})]
    response = Response(doc_id, "math", "Add.", " ".join(steps), {}, task="halt_math")
    return ScoredResponse(response, tuple(frags), tuple(apply_dependent_rule(own)),
                          abstained=False, n_desired=3).to_dict()


def test_fragment_numbers_are_one_based_in_the_list_and_the_explanations(tmp_path):
    write_jsonl(tmp_path / "m.jsonl", [_dependent_row()])
    data = _parse(render([load_run(tmp_path / "m.jsonl")])).data_json
    third = data["samples"][0]["fr"][2]
    # The page lists fragments from #1, so the wrong second step is #2 there and here.
    assert third[6] == "follows the first incorrect fragment (#2)"
    assert third[7]["first_error"] == "#2" and third[7]["own_label"] == "correct"


def test_the_summary_shows_micro_correctness_with_its_interval(tmp_path):
    rows = [scored_row("1", ["correct", "incorrect", "incorrect", "incorrect"]), scored_row("2", ["correct"])]
    write_jsonl(tmp_path / "b.jsonl", rows)
    html = render([load_run(tmp_path / "b.jsonl")])
    assert ">micro correctness</th>" in html
    # Pooled: 2 correct of 5 given, where the mean of the per-answer shares is 0.625.
    assert re.search(r"<td>0\.400<span class=\"ci\">\[", html)


def test_a_point_at_zero_zero_sits_inside_the_axes_clear_of_their_labels(tmp_path):
    write_jsonl(tmp_path / "z.jsonl", [scored_row("1", ["incorrect"]), scored_row("2", ["incorrect"])])
    html = render([load_run(tmp_path / "z.jsonl")])
    circle = re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)"', html)
    cx, cy, r = map(float, circle.groups())
    axes = re.findall(r'<line class="axis" x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)" y2="([\d.]+)"', html)
    x_axis_y = float(axes[0][2])  # horizontal axis
    y_axis_x = float(axes[1][0])  # vertical axis
    # Tick labels lie outside the axes (left of the vertical, below the horizontal one).
    assert cx - r > y_axis_x and cy + r < x_axis_y


def test_the_script_comes_before_the_chunks_so_it_draws_while_they_are_parsed(tmp_path):
    rows = [scored_row(str(i), ["correct"]) for i in range(450)]
    html = render([load_run(write_jsonl(tmp_path / "r.jsonl", rows))])
    script = html.index("<script>\n")
    assert html.index('id="halt-index"') < script < html.index('id="halt-chunk-0"')
    # The script waits for a chunk until the parser has started the next one or read the page.
    assert 'getElementById("halt-chunk-" + (c + 1))' in html and "DOMContentLoaded" in html


def test_the_splitters_skip_reasons_travel_with_the_sample(tmp_path):
    row = scored_row("1", ["correct"])
    row["evidence"] = {"skipped": [{"span": [0, 3], "reason": "boilerplate"}]}
    html = render([load_run(write_jsonl(tmp_path / "r.jsonl", [row]))])
    assert _parse(html).data_json["samples"][0]["sk"] == [[0, 3, "boilerplate"]]
    assert "chat boilerplate (a greeting, thanks, an offer of help), not a claim" in html


def test_a_lone_surrogate_in_an_answer_or_id_is_written_as_an_escape_not_a_crash(tmp_path, capsys):
    row = scored_row("s\ud800", ["correct"])
    row["response"] = row["response"] + " \ud800"
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="ascii")  # valid JSON: the escape, not the code unit
    out = tmp_path / "r.html"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "lone surrogate" in capsys.readouterr().err
    html = out.read_text(encoding="utf-8")
    assert "\\ud800" in html  # the id, as an escape
    [sample] = read_chunk(_parse(html).data["halt-chunk-0"])["samples"]
    assert sample["t"].endswith(" \ud800")  # the answer text itself survives in its chunk
