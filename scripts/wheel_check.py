"""Inputs for scripts/wheel_check.sh, written with the installed wheel (never the checkout).

    python wheel_check.py tasks                 print the name of each halt_* task installed
    python wheel_check.py prepare OUT N         write OUT/replay_<task>.jsonl for every task and
                                                OUT/score_<domain>.jsonl (+ OUT/bio_corpus.jsonl)
    python wheel_check.py check-score FILE N SUMMARY   FILE (scored rows) holds N rows; print them
    python wheel_check.py check-run DIR TASK N  lm-eval wrote results and N samples for TASK
    python wheel_check.py online DATA           with no HALT_DATA_DIR: every task's docs load from a
                                                local HTTP server standing in for its online
                                                source (HALT_DATA_MIRROR; files built from DATA),
                                                and with no source reachable each task fails
                                                with the one-line DataError

Answers are the references themselves (the reference solution, the gold answer, facts that
FActScore's annotators marked supported), so a working judge finds correct fragments. Each step
prints one line per check; a step that fails prints ``FAIL`` with the error and exits 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import tempfile
import threading
import traceback
import urllib.parse
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOMAINS = ("math", "code", "bio", "med")


def installed_tasks() -> dict[str, str]:
    """``{task: domain}`` for every task YAML of the installed package (groups left out)."""
    from importlib.resources import files

    import yaml

    tasks: dict[str, str] = {}
    for folder in files("halt_eval.tasks").iterdir():
        if not folder.is_dir() or not folder.name.startswith("halt_"):
            continue
        for entry in folder.iterdir():
            if not entry.name.endswith(".yaml"):
                continue
            # lm-eval's YAMLs may carry `!function` tags: read only the plain keys.
            config = yaml.load(entry.read_text(encoding="utf-8"), Loader=_Loader) or {}
            name = config.get("task")
            if isinstance(name, str) and "group" not in config:
                tasks[name] = (config.get("metadata") or {}).get("domain") or folder.name[5:]
    return dict(sorted(tasks.items()))


def task_sources() -> dict[str, tuple[str, str]]:
    """``{task: (domain, source)}`` for every task YAML of the installed package (groups left out)."""
    from importlib.resources import files

    import yaml

    out: dict[str, tuple[str, str]] = {}
    for folder in files("halt_eval.tasks").iterdir():
        if not folder.is_dir() or not folder.name.startswith("halt_"):
            continue
        for entry in folder.iterdir():
            if entry.name.endswith(".yaml"):
                config = yaml.load(entry.read_text(encoding="utf-8"), Loader=_loader()) or {}
                meta = config.get("metadata") or {}
                if isinstance(config.get("task"), str) and "group" not in config and "source" in meta:
                    out[config["task"]] = (meta.get("domain") or folder.name[5:], meta["source"])
    return dict(sorted(out.items()))


def write_mirror(data: Path, out: Path) -> dict[str, str]:
    """Lay out, under ``out`` by URL path, a copy of every online source (``Source.url``) of the
    installed domains, built from the data directory ``data``: the file itself where the online
    file has the local file's format (the pinned GitHub files), else the local rows written in
    the online format (Parquet via pyarrow, JSON, JSONL: the Hub files). Returns
    ``{source name: URL path}``.
    """
    from halt_eval.data import source_rows
    from halt_eval.domains import domain_names, get_domain

    written: dict[str, str] = {}
    for name in domain_names():
        for src in get_domain(name).sources.values():
            if src.url is None or not src.local:
                continue
            url_path = urllib.parse.urlsplit(src.url).path
            target = out / url_path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            local = data / src.local
            if Path(url_path).suffix == local.suffix:
                target.write_bytes(local.read_bytes())
            else:
                rows = source_rows(src, data) or []
                if target.suffix == ".parquet":
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    pq.write_table(pa.Table.from_pylist(rows), target)
                elif target.suffix == ".json":
                    target.write_text(json.dumps(rows), encoding="utf-8")
                else:
                    target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            written[src.name] = url_path
    return written


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` on 127.0.0.1; yields the base URL and the list of paths requested."""
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _env(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_online(data: Path) -> int:
    """Every task's docs load from a local server standing in for its online source, with no
    HALT_DATA_DIR, and equal the docs read from ``data``; with no source reachable each task with
    an online source fails with the one-line DataError, and a packaged one still loads."""
    import halt_eval
    from halt_eval.data import DATA_ENV, DataError, load_docs
    from halt_eval.domains import get_domain

    if "site-packages" not in Path(halt_eval.__file__).resolve().parts:
        print(f"FAIL halt_eval is imported from {Path(halt_eval.__file__).parent}, not the installed wheel")
        return 1
    tasks = task_sources()
    status = 0
    with tempfile.TemporaryDirectory(prefix="halt-online-") as tmp:
        root = Path(tmp)
        write_mirror(data, root / "mirror")
        local = {task: load_docs(domain, source, task, str(data)) for task, (domain, source) in tasks.items()}
        with file_server(root / "mirror") as (base, requested), \
                _env(HALT_DATA_DIR=None, HALT_DATA_MIRROR=base, HALT_DATA_CACHE=str(root / "cache")):
            for task, (domain, source) in tasks.items():
                src = get_domain(domain).sources[source]
                before = len(requested)
                try:
                    docs = load_docs(domain, source, task)
                except Exception as e:  # noqa: BLE001 - reported, the other tasks still run
                    print(f"online {task}: FAIL {type(e).__name__}: {e}")
                    status = 1
                    continue
                where = (urllib.parse.urlsplit(src.url).netloc if src.url else "the package")
                fetched = "cached" if src.url and len(requested) == before else f"{len(requested) - before} request"
                if docs != local[task] or not docs:
                    print(f"online {task}: FAIL {len(docs)} docs differ from the {len(local[task])} "
                          f"read from {DATA_ENV}")
                    status = 1
                else:
                    print(f"online {task}: ok ({len(docs)} docs, {source} as from {where}"
                          f"{', ' + fetched if src.url else ''})")
        dead = f"http://127.0.0.1:{closed_port()}"
        shown_once = False
        with _env(HALT_DATA_DIR=None, HALT_DATA_MIRROR=dead, HALT_DATA_CACHE=str(root / "empty")):
            for task, (domain, source) in tasks.items():
                src = get_domain(domain).sources[source]
                try:
                    docs = load_docs(domain, source, task)
                except DataError as e:
                    msg = str(e)
                    good = (src.url is not None and "\n" not in msg and msg.startswith(f"{source}: ")
                            and dead in msg and DATA_ENV in msg and e.__cause__ is None)
                    # the whole line once, then its head (dataset and URL tried) per task
                    shown = msg if not good or not shown_once else msg.split(" (via ")[0] + " ..."
                    shown_once = shown_once or good
                    print(f"unreachable {task}: {'ok' if good else 'FAIL'} ({shown})")
                    status |= 0 if good else 1
                except Exception as e:  # noqa: BLE001
                    print(f"unreachable {task}: FAIL {type(e).__name__} instead of DataError: {e}")
                    status = 1
                else:
                    if src.url is None:
                        print(f"unreachable {task}: ok (no online source; {len(docs)} docs from the package)")
                    else:
                        print(f"unreachable {task}: FAIL loaded {len(docs)} docs with nothing reachable")
                        status = 1
    return status


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


def _reference(doc: dict) -> dict:
    ref = doc.get("reference") or {}
    return json.loads(ref) if isinstance(ref, str) else dict(ref)


def _supported_facts(topic: str) -> list[str]:
    """Facts FActScore's annotators marked supported for ``topic`` (from $HALT_DATA_DIR)."""
    root = Path(os.environ["HALT_DATA_DIR"]) / "bio" / "factscore"
    facts: list[str] = []
    for path in sorted(root.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("topic") != topic:
                continue
            for sentence in row.get("annotations") or []:
                facts += [f["text"] for f in sentence.get("human-atomic-facts") or []
                          if f.get("label") == "S" and f["text"] not in facts]
    return facts


def answer_for(domain: str, doc: dict) -> str:
    """An answer built from the doc's reference."""
    ref = _reference(doc)
    if domain == "math":
        return ref.get("solution") or f"The answer is $\\boxed{{{ref.get('answer', '')}}}$."
    if domain == "code":
        return f"```python\n{ref.get('solution') or 'pass'}\n```"
    if domain == "bio":
        topic = ref.get("topic", "")
        facts = _supported_facts(topic)[:4] or [f"{topic} is a person."]
        return " ".join(f if f.endswith(".") else f + "." for f in facts)
    if domain == "med":
        return ref.get("answer") or " ".join(ref.get("must_have") or []) or "I do not know."
    return "Unsure from Here"


def load_task_docs(tasks: list[str], n: int) -> dict[str, list[dict] | BaseException]:
    """The first ``n`` docs of each task, read through lm-eval as `halt-eval run` reads them."""
    from lm_eval.tasks import TaskManager, get_task_dict

    import halt_eval.lmeval as glue

    manager = TaskManager(include_path=glue.tasks_path())
    out: dict[str, list[dict] | BaseException] = {}
    for task in tasks:
        try:
            obj = get_task_dict([task], manager)[task]
            docs = obj.test_docs() if obj.has_test_docs() else obj.validation_docs()
            out[task] = [dict(docs[i]) for i in range(min(n, len(docs)))]
        except BaseException as e:  # noqa: BLE001 - every failure is reported, none stops the rest
            if isinstance(e, KeyboardInterrupt):
                raise
            out[task] = e
    return out


def prepare(out: Path, n: int) -> int:
    import halt_eval

    where = Path(halt_eval.__file__).resolve()
    print(f"halt_eval imported from {where.parent}")
    if "site-packages" not in where.parts:
        print("wheel-check: FAIL halt_eval is not the installed wheel")
        return 1
    tasks = installed_tasks()
    print(f"{len(tasks)} tasks in the wheel: {' '.join(tasks)}")
    missing = [d for d in DOMAINS if f"halt_{d}" not in tasks]
    if missing:
        print(f"FAIL no task for domain(s) {', '.join(missing)}")
        return 1
    docs = load_task_docs(list(tasks), n)
    status = 0
    for task, domain in tasks.items():
        got = docs[task]
        if isinstance(got, BaseException) or len(got) < n:
            # The lm-eval run is still tried with placeholder answers (replay needs only doc ids),
            # so that its log shows the error a user would see.
            status = 1
            if isinstance(got, BaseException):
                first = str(got).splitlines()[0] if str(got) else ""
                print(f"prepare {task}: FAIL {type(got).__name__}: {first}")
                (out / f"prepare_{task}.log").write_text("".join(
                    traceback.format_exception(type(got), got, got.__traceback__)))
            else:
                print(f"prepare {task}: FAIL only {len(got)} docs")
            answers = ["Unsure from Here"] * n
        else:
            answers = [answer_for(domain, doc) for doc in got]
            if task == f"halt_{domain}" and domain != "bio":
                write_score_input(out, domain, got)
            print(f"prepare {task}: ok ({len(got)} docs: {', '.join(str(d.get('id')) for d in got)})")
        with (out / f"replay_{task}.jsonl").open("w", encoding="utf-8") as fh:
            for i, text in enumerate(answers):
                fh.write(json.dumps({"task": task, "doc_id": i, "response": text}) + "\n")
    # Bio answers for `halt-eval score` come from FActScore's labelled topics (they have facts
    # to answer with), independently of the halt_bio task's entity list.
    topics = factscore_topics(n)
    write_score_input(out, "bio", [{"id": f"bio-{i}", "prompt": f"Tell me a bio of {t}.",
                                    "reference": {"topic": t}} for i, t in enumerate(topics)])
    print(f"prepare score bio: ok ({len(topics)} FActScore topics: {', '.join(topics)})")
    return status


def factscore_topics(n: int) -> list[str]:
    """The first ``n`` topics (sorted) that have supported facts in $HALT_DATA_DIR's FActScore."""
    root = Path(os.environ["HALT_DATA_DIR"]) / "bio" / "factscore"
    topics = set()
    for path in sorted(root.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("annotations"):
                topics.add(row["topic"])
    return [t for t in sorted(topics) if _supported_facts(t)][:n]


def write_score_input(out: Path, domain: str, docs: list[dict]) -> None:
    rows = [{"id": str(doc.get("id", i)), "prompt": doc.get("prompt", ""),
             "response": answer_for(domain, doc), "reference": _reference(doc)}
            for i, doc in enumerate(docs)]
    with (out / f"score_{domain}.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    if domain == "bio":
        # A tiny {title, text} corpus: the supported facts stand in for each topic's Wikipedia page.
        with (out / "bio_corpus.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                topic = row["reference"]["topic"]
                fh.write(json.dumps({"title": topic, "text": " ".join(_supported_facts(topic))}) + "\n")


def _fmt(summary: dict) -> str:
    keys = [k for k in ("correctness", "completeness", "f1", "n_given", "n_correct") if k in summary]
    parts = []
    for k in keys:
        v = summary[k]
        if isinstance(v, dict):
            v = v.get("value", v.get("mean"))
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}")
    return ", ".join(parts)


def check_score(path: Path, n: int, summary_path: Path) -> int:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(rows) != n:
        print(f"FAIL {len(rows)} scored rows, expected {n}")
        return 1
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    counts = summary.get("verdicts")
    if not isinstance(counts, dict):
        labels = [f.get("verdict", {}).get("label") for r in rows for f in r.get("fragments") or []]
        counts = {lab: labels.count(lab) for lab in sorted(set(labels), key=str)}
    shown = " ".join(f"{k}={v}" for k, v in counts.items())
    print(f"ok ({n} rows; verdicts {shown}; {_fmt(summary)})")
    return 0


def check_run(out: Path, task: str, n: int) -> int:
    results = sorted(out.rglob("results_*.json"))
    samples = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    if not results or not samples:
        print(f"FAIL no {'results' if not results else 'samples'} file under {out}")
        return 1
    metrics = json.loads(results[-1].read_text(encoding="utf-8"))["results"].get(task)
    if metrics is None:
        print(f"FAIL {results[-1].name} has no results for {task}")
        return 1
    lines = [json.loads(line) for line in samples[-1].read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) != n:
        print(f"FAIL {len(lines)} samples, expected {n}")
        return 1
    shown = {k.split(",")[0]: v for k, v in metrics.items()
             if k.split(",")[0] in ("correctness", "completeness", "f1") and "stderr" not in k}
    print(f"ok ({n} samples; {_fmt(shown)})")
    return 0


_Loader = None


def main(argv: list[str]) -> int:
    global _Loader
    _Loader = _loader()
    cmd, *rest = argv
    if cmd == "tasks":
        print("\n".join(installed_tasks()))
        return 0
    if cmd == "prepare":
        return prepare(Path(rest[0]), int(rest[1]))
    if cmd == "check-score":
        return check_score(Path(rest[0]), int(rest[1]), Path(rest[2]))
    if cmd == "check-run":
        return check_run(Path(rest[0]), rest[1], int(rest[2]))
    if cmd == "online":
        return check_online(Path(rest[0]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
