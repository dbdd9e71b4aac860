"""Online data sources: pinned URLs (GitHub releases, the Hub's file URLs) served by a local HTTP
server through HALT_DATA_MIRROR, pins, and the one-line error."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from halt_eval import data
from halt_eval.data import DataError, load_docs
from halt_eval.domains import domain_names, get_domain

ROOT = Path(__file__).resolve().parents[1]


def _wheel_check():
    """scripts/wheel_check.py, whose mirror builder and file server the wheel check runs too."""
    spec = importlib.util.spec_from_file_location("wheel_check", ROOT / "scripts" / "wheel_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

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


def test_every_online_source_is_pinned():
    for name in domain_names():
        for src in get_domain(name).sources.values():
            if src.hub is not None or src.url is not None:
                assert src.revision and len(src.revision) == 40, src.name
            if src.url is not None:
                assert src.revision in src.url and src.local, src.name


def test_every_source_with_a_data_file_is_a_pinned_url_and_hub_ones_are_the_hub_file_urls():
    seen_hub = []
    for name in domain_names():
        for src in get_domain(name).sources.values():
            if src.local:
                assert src.url is not None, f"{src.name} has no online source"
            if src.hub is not None:
                prefix = f"https://huggingface.co/datasets/{src.hub[0]}/resolve/{src.revision}/"
                assert src.url.startswith(prefix), src.name
                assert src.url.endswith((".parquet", ".jsonl", ".json")), src.name
                seen_hub.append(src.name)
    assert sorted(seen_hub) == ["gsm8k", "math500", "mbpp"]


@pytest.fixture(scope="module")
def wheel_check():
    return _wheel_check()


def test_every_task_loads_from_a_local_server_standing_in_for_its_online_source(
        online, monkeypatch, tmp_path, wheel_check, shared_data):
    """Files laid out by URL path (GitHub files copied from shared/data; the Hub's files written in
    their own format, Parquet for GSM8K and MBPP) load every task with no data directory, and give
    the docs the data directory gives."""
    written = wheel_check.write_mirror(shared_data, tmp_path / "mirror")
    parquet = [p for p in written.values() if p.endswith(".parquet")]
    assert len(parquet) == 2 and all((tmp_path / "mirror" / p.lstrip("/")).read_bytes()[:4] == b"PAR1"
                                     for p in parquet)
    tasks = wheel_check.task_sources()
    assert {"halt_math", "halt_math_gsm8k", "halt_code", "halt_code_apps", "halt_med", "halt_bio"} <= set(tasks)
    with wheel_check.file_server(tmp_path / "mirror") as (base, requested):
        monkeypatch.setenv(data.DATA_MIRROR_ENV, base)
        fetched: set[str] = set()
        for task, (domain, source) in tasks.items():
            src = get_domain(domain).sources[source]
            before = len(requested)
            docs = load_docs(domain, source, task)
            assert docs and docs == load_docs(domain, source, task, str(shared_data)), task
            if src.url is not None:
                # the file at its URL path, once; a second task on the same source reads the cache
                want = [] if source in fetched else [urllib.parse.urlsplit(src.url).path]
                assert requested[before:] == want, task
                fetched.add(source)
    # every source file was fetched once; the cache served repeats (gsm8k has two tasks)
    assert sorted(requested) == sorted(written.values())


def test_with_nothing_reachable_every_task_fails_with_one_line_naming_dataset_url_and_variable(
        online, monkeypatch, wheel_check):
    dead = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(data.DATA_MIRROR_ENV, dead)
    failed = []
    for task, (domain, source) in wheel_check.task_sources().items():
        src = get_domain(domain).sources[source]
        if src.url is None:  # HumanEval, the FActScore entities: from installed packages
            assert load_docs(domain, source, task)
            continue
        with pytest.raises(DataError) as e:
            load_docs(domain, source, task)
        msg = str(e.value)
        tried = dead + urllib.parse.urlsplit(src.url).path
        assert "\n" not in msg and e.value.__cause__ is None
        assert msg.startswith(f"{source}: cannot download {tried} "), msg
        assert src.url in msg and "HALT_DATA_DIR" in msg and src.local in msg
        failed.append(task)
    assert {"halt_math", "halt_math_gsm8k", "halt_code", "halt_code_apps", "halt_code_mbppplus",
            "halt_med"} <= set(failed)


def test_the_mirror_replaces_scheme_and_host_and_keeps_the_path(monkeypatch):
    url = "https://huggingface.co/datasets/openai/gsm8k/resolve/abc/main/test-00000-of-00001.parquet"
    monkeypatch.delenv(data.DATA_MIRROR_ENV, raising=False)
    assert data.mirrored(url) == url
    monkeypatch.setenv(data.DATA_MIRROR_ENV, "http://mirror.local:8080/halt/")
    assert data.mirrored(url) == ("http://mirror.local:8080/halt/datasets/openai/gsm8k/resolve/abc/"
                                  "main/test-00000-of-00001.parquet")
    monkeypatch.setenv(data.DATA_MIRROR_ENV, "mirror.local")
    with pytest.raises(DataError, match="HALT_DATA_MIRROR='mirror.local' is not a base URL"):
        data.mirrored(url)


def test_a_download_that_is_not_a_readable_file_is_one_line_and_leaves_the_cache(online, monkeypatch, tmp_path):
    src = get_domain("math").sources["gsm8k"]
    path = urllib.parse.urlsplit(src.url).path
    server = FileServer({path: b"<html>rate limited</html>"})
    try:
        monkeypatch.setenv(data.DATA_MIRROR_ENV, server.base)
        with pytest.raises(DataError) as e:
            load_docs("math", "gsm8k", "halt_math_gsm8k")
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("gsm8k: ") and "not a readable Parquet file" in msg
        assert "removed from the cache" in msg and "HALT_DATA_DIR" in msg
        assert not list((tmp_path / "cache").rglob("*.parquet"))
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist([{"question": "What is 2+3?", "answer": "2+3=5\n#### 5"}]), buf)
        server.files[path] = buf.getvalue().to_pybytes()
        docs = load_docs("math", "gsm8k", "halt_math_gsm8k")
        assert [json.loads(d["reference"])["answer"] for d in docs] == ["5"]
    finally:
        server.close()


def test_a_file_url_mirror_serves_a_folder_laid_out_by_url_path(online, monkeypatch, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = get_domain("code").sources["mbpp"]
    target = tmp_path / "mirror" / urllib.parse.urlsplit(src.url).path.lstrip("/")
    target.parent.mkdir(parents=True)
    row = {"task_id": 11, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
           "test_list": ["assert add(1, 2) == 3"], "test_setup_code": "", "challenge_test_list": []}
    pq.write_table(pa.Table.from_pylist([row, {**row, "task_id": 600}]), target)  # 600: not in the test split
    monkeypatch.setenv(data.DATA_MIRROR_ENV, (tmp_path / "mirror").as_uri())
    docs = load_docs("code", "mbpp", "halt_code")
    assert [d["id"] for d in docs] == ["11"]
    assert json.loads(docs[0]["reference"])["tests"] == ["assert add(1, 2) == 3"]
