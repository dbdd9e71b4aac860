"""Online data sources: pinned raw URLs served by a local HTTP server, pins, and the one-line error."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from halt_eval import data
from halt_eval.data import DataError, load_docs
from halt_eval.domains import domain_names, get_domain

KQA_ROWS = [
    {"Question": "Can ibuprofen cause stomach bleeding?", "Must_have": ["Ibuprofen can cause stomach bleeding."],
     "Nice_to_have": [], "Free_form_answer": "Yes, ibuprofen can cause stomach bleeding."},
    {"Question": "Is paracetamol safe in pregnancy?", "Must_have": ["Paracetamol is generally safe in pregnancy."],
     "Nice_to_have": ["Use the lowest effective dose."], "Free_form_answer": "Generally yes."},
]


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 and counts the requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def online(monkeypatch, tmp_path):
    """No data directory, an empty download cache."""
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.DATA_CACHE_ENV, str(tmp_path / "cache"))


def _point(monkeypatch, domain: str, source: str, url: str) -> None:
    record = get_domain(domain)
    monkeypatch.setitem(record.sources, source, dataclasses.replace(record.sources[source], url=url))


def test_a_pinned_url_source_is_downloaded_once_into_the_cache(online, monkeypatch, tmp_path):
    body = "".join(json.dumps(r) + "\n" for r in KQA_ROWS).encode()
    server = FileServer({"/Itaymanes/K-QA/abc123/dataset/questions_w_answers.jsonl": body})
    try:
        _point(monkeypatch, "med", "kqa", f"{server.base}/Itaymanes/K-QA/abc123/dataset/questions_w_answers.jsonl")
        docs = load_docs("med", "kqa", "halt_med")
        assert [json.loads(d["reference"])["must_have"] for d in docs] == [r["Must_have"] for r in KQA_ROWS]
        assert docs[0]["prompt"].startswith("Can ibuprofen cause stomach bleeding?")
        assert load_docs("med", "kqa", "halt_med") == docs
        assert len(server.requests) == 1  # the second load reads the cache
        assert list((tmp_path / "cache" / "kqa").rglob("questions_w_answers.jsonl"))
    finally:
        server.close()


def test_a_data_directory_wins_over_the_online_source(monkeypatch, tmp_path):
    (tmp_path / "med" / "k-qa").mkdir(parents=True)
    (tmp_path / "med" / "k-qa" / "questions_w_answers.jsonl").write_text(json.dumps(KQA_ROWS[1]) + "\n")
    _point(monkeypatch, "med", "kqa", "http://127.0.0.1:9/never-asked.jsonl")
    docs = load_docs("med", "kqa", "halt_med", configured_dir=str(tmp_path))
    assert len(docs) == 1 and docs[0]["prompt"].startswith("Is paracetamol safe")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_source_fails_with_one_line_naming_dataset_url_and_variable(online, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/dmis-lab/OLAPH/x/MedLFQA/live_qa_test_MedLFQA.jsonl"
    _point(monkeypatch, "med", "medlfqa_live_qa", url)
    with pytest.raises(DataError) as e:
        load_docs("med", "medlfqa_live_qa", "halt_med_live_qa")
    msg = str(e.value)
    assert "\n" not in msg and e.value.__cause__ is None
    assert msg.startswith("medlfqa_live_qa: cannot download ") and url in msg and "HALT_DATA_DIR" in msg


def test_a_missing_file_at_the_url_names_the_http_status(online, monkeypatch):
    server = FileServer({})
    try:
        _point(monkeypatch, "code", "apps", f"{server.base}/selected150.jsonl")
        with pytest.raises(DataError, match=r"apps: cannot download .*selected150.jsonl \(HTTP 404\).*HALT_DATA_DIR"):
            load_docs("code", "apps", "halt_code_apps")
    finally:
        server.close()


def test_a_hub_failure_is_one_line_naming_the_pinned_url(online, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as e:
        load_docs("math", "gsm8k", "halt_math_gsm8k")
    msg = str(e.value)
    assert "\n" not in msg and "HALT_DATA_DIR" in msg
    assert "https://huggingface.co/datasets/openai/gsm8k/tree/cc7b047b6e5bb11b4f1af84efc572db110a51b3c" in msg


def test_every_online_source_is_pinned():
    for name in domain_names():
        for src in get_domain(name).sources.values():
            if src.hub is not None or src.url is not None:
                assert src.revision and len(src.revision) == 40, src.name
            if src.url is not None:
                assert src.revision in src.url and src.local, src.name
