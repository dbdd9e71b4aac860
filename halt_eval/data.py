"""Task data: finding and reading a domain's sources; docs come from the domain records.

A doc is ``{"id", "task", "domain", "source", "prompt", "reference"}`` (see
``halt_eval.domains.base.Domain.doc``). Rows come from local files when a data directory is
given (``--data-dir``/task metadata ``data_dir``, else the ``HALT_DATA_DIR`` environment
variable), in the layout of the project's data README; otherwise online from ``Source.url``, a
URL pinned to a commit: the dataset's own public release (a raw GitHub URL: K-QA, MedLFQA, MBPP+,
APPS) or the Hugging Face Hub's file URL at a dataset revision
(``https://huggingface.co/datasets/<repo>/resolve/<revision>/<path>``: MATH-500, GSM8K, MBPP).
Files are JSONL, JSON (a list of rows) or Parquet (read with pyarrow). ``HALT_DATA_MIRROR``, a
base URL, replaces the scheme and host of every source URL (an air-gapped mirror laid out by URL
path, or a test server). Each file is downloaded once into ``$HALT_DATA_CACHE`` (default
``~/.cache/halt-eval/data``), keyed by its pinned URL. Sources with no file (HumanEval, the
FActScore entities) are read from installed packages by their loaders. When no source can be
reached the ``DataError`` is one line naming the dataset, the URL tried and the variable to set.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halt_eval.domains.base import Domain, Source

DATA_ENV = "HALT_DATA_DIR"
DATA_CACHE_ENV = "HALT_DATA_CACHE"
DATA_MIRROR_ENV = "HALT_DATA_MIRROR"
#: Seconds before a download is given up.
DOWNLOAD_TIMEOUT = 60.0
_USER_AGENT = "halt-eval/0.1 (LLM evaluation harness; downloads each pinned dataset file once)"


class DataError(RuntimeError):
    """A task's data cannot be found or read; the message says where it looked."""


def data_dir(configured: str | None = None) -> Path | None:
    """The local data directory: ``configured``, else ``$HALT_DATA_DIR``, else ``None``."""
    for candidate in (configured, os.environ.get(DATA_ENV)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_dir():
                raise DataError(f"data directory {path} does not exist (from "
                                f"{'task metadata data_dir' if candidate == configured else DATA_ENV})")
            return path
    return None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file, blank lines skipped; a broken line is a ``DataError`` naming
    ``file:line``."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e


def data_cache() -> Path:
    """Where downloaded dataset files are kept: ``$HALT_DATA_CACHE`` or ``~/.cache/halt-eval/data``."""
    if os.environ.get(DATA_CACHE_ENV):
        return Path(os.environ[DATA_CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "halt-eval" / "data"


def _set_hint(source: Source) -> str:
    return (f"set {DATA_ENV} (or --data-dir, or task metadata data_dir) to a folder holding "
            f"{source.local or source.name}")


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$HALT_DATA_MIRROR`` (unchanged when unset).

    ``HALT_DATA_MIRROR=http://mirror:8000/halt`` turns
    ``https://raw.githubusercontent.com/evalplus/evalplus/<pin>/MbppPlus.jsonl`` into
    ``http://mirror:8000/halt/evalplus/evalplus/<pin>/MbppPlus.jsonl``.

    Raises:
        DataError: ``$HALT_DATA_MIRROR`` is not a base URL.
    """
    base = os.environ.get(DATA_MIRROR_ENV, "").strip()
    if not base:
        return url
    mirror = urllib.parse.urlsplit(base)
    if not mirror.scheme or not (mirror.netloc or mirror.scheme == "file"):
        raise DataError(f"{DATA_MIRROR_ENV}={base!r} is not a base URL (e.g. http://host:8000 or "
                        f"http://host/path)")
    parts = urllib.parse.urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _cache_path(source: Source) -> Path:
    assert source.url is not None
    name = urllib.parse.urlsplit(source.url).path.rsplit("/", 1)[-1] or "data.jsonl"
    return data_cache() / source.name / hashlib.sha1(source.url.encode()).hexdigest()[:12] / name


def download(source: Source) -> Path:
    """The local copy of ``source.url``, downloaded on first use into ``data_cache()``.

    The URL is pinned (a commit in the path), so a file once downloaded is never fetched again;
    the cache is keyed by the pinned URL, so a copy fetched through ``$HALT_DATA_MIRROR`` serves
    later runs without it.

    Raises:
        DataError: The download failed (one line: dataset, URL tried, what to set).
    """
    path = _cache_path(source)
    if path.is_file():
        return path
    assert source.url is not None
    url = mirrored(source.url)
    via = f" (via {DATA_MIRROR_ENV}, for {source.url})" if url != source.url else ""
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT) as resp:
            body = resp.read()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if isinstance(e, urllib.error.HTTPError):
            why = f"HTTP {e.code}"
        else:
            why = str(getattr(e, "reason", None) or e) or type(e).__name__
        why = " ".join(why.split())[:200]
        raise DataError(f"{source.name}: cannot download {url}{via} ({why}); {_set_hint(source)}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    tmp.write_bytes(body)
    tmp.replace(path)
    return path


def _rows_of(path: Path, source: Source) -> list[dict[str, Any]]:
    """Rows of a JSONL file, a JSON file holding a list of rows, or a Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        except ImportError:
            raise DataError(f"{source.name}: reading {path.name} needs pyarrow: "
                            "pip install pyarrow") from None
        except Exception as e:  # noqa: BLE001 - pyarrow's errors (ArrowInvalid, OSError) become one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DataError(f"{source.name}: {path} is not a readable Parquet file ({first})") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{source.name}: {path} is not valid JSON ({e})") from None
        if not isinstance(rows, list):
            raise DataError(f"{source.name}: {path} does not hold a list of rows")
        return rows
    try:
        return list(read_jsonl(path))
    except UnicodeDecodeError as e:
        raise DataError(f"{source.name}: {path} is not UTF-8 text ({e.reason})") from None
    except DataError as e:
        raise DataError(f"{source.name}: {e}") from None


def source_rows(source: Source, root: Path | None) -> list[dict[str, Any]] | None:
    """The raw rows of ``source``: from ``root`` when given, else online from the pinned
    ``source.url`` (through ``$HALT_DATA_MIRROR`` when set).

    Returns ``None`` for a source with no file (its loader reads an installed package).

    Raises:
        DataError: The file is missing under ``root``, or no source can be reached, or the file
            is not what it should be; one line naming the dataset, the URL tried and the
            variable to set. A downloaded file that cannot be read is removed from the cache.
    """
    if not source.local and source.hub is None and source.url is None:
        return None
    if root is not None and source.local:
        path = root / source.local
        if not path.exists():
            raise DataError(f"{source.name}: {path} not found under data directory {root}")
        return _rows_of(path, source)
    if source.url is None:
        raise DataError(f"{source.name}: no local data directory and no online source (the source "
                        f"record has no pinned url); {_set_hint(source)}")
    path = download(source)
    try:
        return _rows_of(path, source)
    except DataError as e:
        path.unlink(missing_ok=True)
        raise DataError(f"{e} (downloaded from {mirrored(source.url)}; removed from the cache); "
                        f"{_set_hint(source)}") from None


def load_docs(domain: str | Domain, source: str, task: str,
              configured_dir: str | None = None) -> list[dict]:
    """All docs of ``source`` (one of ``domain``'s sources) for ``task``.

    Raises:
        DataError: Unknown domain or source, or its data cannot be found.
    """
    from halt_eval.domains import get_domain

    try:
        record = get_domain(domain)
    except ValueError as e:
        raise DataError(str(e)) from None
    try:
        src = record.sources[source]
    except KeyError:
        raise DataError(f"unknown data source {source!r} for domain {record.name!r}; known: "
                        f"{', '.join(record.sources)}") from None
    rows = source_rows(src, data_dir(configured_dir))
    return src.loader()(rows, task=task, domain=record, source=source)


def doc_to_reference(doc: dict) -> dict:
    """The reference object of a doc (also of a doc logged in an lm-eval sample)."""
    ref = doc["reference"]
    return json.loads(ref) if isinstance(ref, str) else dict(ref)


def doc_to_prompt(doc: dict) -> str:
    """The prompt of a doc."""
    return str(doc.get("prompt", ""))


def factscore_corpus(factscore_dir: str | Path, out_path: str | Path,
                     topics: list[str] | None = None) -> Path:
    """Write a JSONL corpus ``{title, text}`` per topic from FActScore's human-``S`` facts.

    The Wikipedia texts behind FActScore's labels are not available offline; the facts human
    annotators marked supported, pooled over the labelled files (``*.jsonl``) in
    ``factscore_dir``, stand in for them. Bio scores against this corpus test the pipeline on
    real answers; they are not scores against Wikipedia.

    Args:
        factscore_dir: Folder with FActScore labelled files (``ChatGPT.dev.jsonl`` ...).
        out_path: Where to write the corpus.
        topics: Keep only these topics (default: all labelled topics).

    Returns:
        ``out_path``.
    """
    facts: dict[str, list[str]] = {}
    for path in sorted(Path(factscore_dir).glob("*.jsonl")):
        for row in read_jsonl(path):
            if topics is not None and row["topic"] not in topics:
                continue
            bucket = facts.setdefault(row["topic"], [])
            for sentence in row.get("annotations") or []:
                bucket += [f["text"] for f in sentence.get("human-atomic-facts") or []
                           if f.get("label") == "S" and f["text"] not in bucket]
    out_path = Path(out_path)
    with out_path.open("w", encoding="utf-8") as fh:
        for topic, texts in facts.items():
            fh.write(json.dumps({"title": topic, "text": " ".join(texts)}, ensure_ascii=False) + "\n")
    return out_path


def factscore_topics(factscore_dir: str | Path) -> list[str]:
    """Topics that have human labels in ``factscore_dir`` (the dev half, here)."""
    return sorted({row["topic"] for p in Path(factscore_dir).glob("*.jsonl") for row in read_jsonl(p)})
