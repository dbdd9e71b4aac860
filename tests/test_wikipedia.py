"""The Wikipedia knowledge source against a fake MediaWiki Action API on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from halt_eval.judges import wikipedia as wp
from halt_eval.judges.wikipedia import Wikipedia, WikipediaUnavailable

ADA = ("Ada Lovelace was an English mathematician and writer. She is chiefly known for her work on "
       "Charles Babbage's Analytical Engine. She was born in London in 1815. Ada Lovelace died in 1852.")
TURING = "Alan Turing was an English mathematician and computer scientist. He was born in Maida Vale in 1912."
PAGES = {"Ada Lovelace": ADA, "Alan Turing": TURING}
REDIRECTS = {"Augusta Ada King": "Ada Lovelace"}


class FakeMediaWiki:
    """``action=query&prop=extracts`` for PAGES, with REDIRECTS and missing pages; counts requests.

    ``fail_first`` answers that many requests with HTTP 503 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict[str, str]] = []
        self.agents: list[str] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                outer.requests.append(q)
                outer.agents.append(self.headers.get("User-Agent", ""))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if url.path != "/w/api.php" or q.get("action") != "query" or q.get("prop") != "extracts":
                    self.send_response(400)
                    self.end_headers()
                    return
                body = json.dumps(outer.answer(q)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api = f"http://127.0.0.1:{self.server.server_address[1]}/w/api.php"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, q: dict[str, str]) -> dict:
        assert q.get("explaintext") == "1" and q.get("redirects") == "1" and q.get("format") == "json"
        title = q["titles"]
        query: dict = {}
        if title in REDIRECTS:
            query["redirects"] = [{"from": title, "to": REDIRECTS[title]}]
            title = REDIRECTS[title]
        if title in PAGES:
            query["pages"] = {"17": {"pageid": 17, "ns": 0, "title": title, "extract": PAGES[title]}}
        else:
            query["pages"] = {"-1": {"ns": 0, "title": title, "missing": ""}}
        return {"batchcomplete": "", "query": query}

    def __enter__(self) -> FakeMediaWiki:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port_api() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/w/api.php"


def test_pages_redirects_and_missing_pages_are_fetched_once_and_cached(tmp_path):
    cache = tmp_path / "wiki.sqlite"
    with FakeMediaWiki() as server:
        wiki = Wikipedia(api=server.api, cache=cache)
        assert wiki.documents("Ada Lovelace") == [ADA]
        redirected = wiki.page("Augusta Ada King")
        assert redirected.resolved == "Ada Lovelace" and redirected.text == ADA
        assert wiki.documents("Nobody Atall") == [] and wiki.page("Nobody Atall").text is None
        assert len(server.requests) == 3
        assert all(a.startswith("halt-eval/") for a in server.agents)
        # a new process: everything comes from the SQLite cache, missing pages too
        again = Wikipedia(api=server.api, cache=cache)
        assert again.documents("Ada Lovelace") == [ADA] and again.documents("Nobody Atall") == []
        assert len(server.requests) == 3 and again.counts["cached"] == 2
    with sqlite3.connect(cache) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == 3


def test_prefetch_fetches_each_title_once_within_the_concurrency_limit(tmp_path):
    with FakeMediaWiki() as server:
        wiki = Wikipedia(api=server.api, cache=tmp_path / "c.sqlite", concurrency=3)
        wiki.prefetch(["Ada Lovelace", "Alan Turing", "Ada Lovelace", "Nobody Atall"])
        assert sorted(q["titles"] for q in server.requests) == ["Ada Lovelace", "Alan Turing", "Nobody Atall"]
        assert wiki.documents("Alan Turing") == [TURING] and len(server.requests) == 3


def test_server_errors_are_retried_with_backoff(tmp_path):
    with FakeMediaWiki(fail_first=2) as server:
        wiki = Wikipedia(api=server.api, cache=tmp_path / "c.sqlite", attempts=3, backoff=0.01)
        assert wiki.documents("Ada Lovelace") == [ADA]
        assert len(server.requests) == 3 and wiki.unreachable is None


def test_an_unreachable_api_stops_asking_and_says_how_to_get_a_source(tmp_path):
    wiki = Wikipedia(api=_closed_port_api(), cache=tmp_path / "c.sqlite", attempts=2, backoff=0.01)
    with pytest.raises(WikipediaUnavailable) as first:
        wiki.page("Ada Lovelace")
    requests = wiki.counts["requests"]
    assert requests == 2
    with pytest.raises(WikipediaUnavailable):
        wiki.page("Alan Turing")
    assert wiki.counts["requests"] == requests  # turned off for the rest of the run
    assert "--corpus" in str(first.value) and "halt-eval corpus" in str(first.value)


def test_the_endpoint_comes_from_the_environment_and_off_turns_it_off(monkeypatch, tmp_path):
    monkeypatch.setenv(wp.API_ENV, "http://127.0.0.1:9/w/api.php")
    monkeypatch.setenv(wp.CACHE_ENV, str(tmp_path / "x.sqlite"))
    assert wp.configured_api() == "http://127.0.0.1:9/w/api.php"
    assert wp.default_cache() == tmp_path / "x.sqlite"
    monkeypatch.setenv(wp.API_ENV, "off")
    assert wp.configured_api() is None


def _score(tmp_path: Path, api: str, cache: Path, rows: list[dict]) -> tuple[subprocess.CompletedProcess, list[dict]]:
    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    summary = tmp_path / "summary.json"
    env = {**__import__("os").environ, wp.API_ENV: api, wp.CACHE_ENV: str(cache)}
    proc = subprocess.run([sys.executable, "-m", "halt_eval.cli", "score", str(src), "--domain", "bio",
                           "-o", str(out), "--summary-json", str(summary)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc, [json.loads(line) for line in out.read_text().splitlines()]


def _verdicts(row: dict) -> list[tuple[str, str]]:
    return [(f["verdict"], f["reason"]) for f in row["fragments"]]


ROWS = [
    {"id": "stated", "prompt": "Tell me a bio of Ada Lovelace.", "reference": {"topic": "Ada Lovelace"},
     "response": "Ada Lovelace was born in London in 1815."},
    {"id": "contradicted", "prompt": "Tell me a bio of Ada Lovelace.", "reference": {"topic": "Ada Lovelace"},
     "response": "Ada Lovelace died in 1901."},
    {"id": "redirect", "prompt": "Tell me a bio of Augusta Ada King.",
     "reference": {"topic": "Augusta Ada King"},
     "response": "Augusta Ada King worked on Charles Babbage's Analytical Engine."},
    {"id": "missing", "prompt": "Tell me a bio of Nobody Atall.", "reference": {"topic": "Nobody Atall"},
     "response": "Nobody Atall was born in Paris in 1900."},
]


def test_score_bio_without_a_corpus_judges_against_wikipedia_and_caches(tmp_path):
    cache = tmp_path / "wiki.sqlite"
    with FakeMediaWiki() as server:
        _, rows = _score(tmp_path, server.api, cache, ROWS)
        by_id = {r["id"]: r for r in rows}
        assert _verdicts(by_id["stated"]) and all(v == ("correct", "supported") for v in _verdicts(by_id["stated"]))
        assert ("incorrect", "contradicted") in _verdicts(by_id["contradicted"])
        assert all(label == "correct" for label, _ in _verdicts(by_id["redirect"]))
        assert all(v[0] == "unverifiable" and v[1] == "no_reference" for v in _verdicts(by_id["missing"]))
        assert by_id["stated"]["fragments"][0]["evidence"]["source"] == "topic_document"
        first = len(server.requests)
        assert first == 3  # one per distinct topic
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["judge_spec"]["judge"]["options"]["knowledge"] == f"wikipedia:{server.api}"
        _, again = _score(tmp_path, server.api, cache, ROWS)
        assert len(server.requests) == first  # the second run asks nothing
        assert [_verdicts(r) for r in again] == [_verdicts(r) for r in rows]


def test_offline_without_a_cache_facts_are_unverifiable_and_said_once(tmp_path):
    proc, rows = _score(tmp_path, _closed_port_api(), tmp_path / "empty.sqlite", ROWS)
    for row in rows:
        assert row["fragments"]
        for v in row["fragments"]:
            assert (v["verdict"], v["reason"]) == ("unverifiable", "no_knowledge_source")
            assert "--corpus" in v["explanation"]
    assert proc.stderr.count("Wikipedia unavailable") == 1
    assert proc.stdout.count("Wikipedia unavailable") == 1  # the summary's note line
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "Wikipedia unavailable" in summary["judge_stats"]["note"]


def test_corpus_command_writes_the_pages_of_a_topic_list(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("Ada Lovelace\nAugusta Ada King\nNobody Atall\n")
    out = tmp_path / "corpus.jsonl"
    with FakeMediaWiki() as server:
        proc = subprocess.run([sys.executable, "-m", "halt_eval.cli", "corpus", str(topics), "-o", str(out),
                               "--api", server.api, "--cache", str(tmp_path / "c.sqlite")],
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"title": "Ada Lovelace", "text": ADA}, {"title": "Augusta Ada King", "text": ADA}]
    assert "Nobody Atall" in proc.stderr and "2 of 3 topics" in proc.stdout
