"""Task data: finding and reading a domain's sources; docs come from the domain records.

A doc is ``{"id", "task", "domain", "source", "prompt", "reference"}`` (see
``halt_eval.domains.base.Domain.doc``). Rows come from local files when a data directory is
given (``--data-dir``/task metadata ``data_dir``, else the ``HALT_DATA_DIR`` environment
variable), in the layout of the project's data README; otherwise from the Hugging Face Hub
where the set is published there (``Source.hub``). Sources with neither (HumanEval, the
FActScore entities) are read from installed packages by their loaders.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halt_eval.domains.base import Domain, Source

DATA_ENV = "HALT_DATA_DIR"


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


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e


def source_rows(source: Source, root: Path | None) -> list[dict[str, Any]] | None:
    """The raw rows of ``source``: from ``root`` when given, else from the Hub.

    Returns ``None`` for a source with no file (its loader reads an installed package).

    Raises:
        DataError: The file is missing under ``root``, or there is neither a data directory
            nor a Hub source; the message names the dataset and what to set.
    """
    if not source.local and source.hub is None:
        return None
    if root is not None and source.local:
        path = root / source.local
        if not path.exists():
            raise DataError(f"{source.name}: {path} not found under data directory {root}")
        return list(_jsonl(path))
    if source.hub is not None:
        import datasets

        repo, name, split = source.hub
        return list(datasets.load_dataset(repo, name, split=split, revision=source.revision))
    raise DataError(f"{source.name}: no local data directory (set {DATA_ENV}, --data-dir or task "
                    f"metadata data_dir to a folder holding {source.local}) and no Hub source for it")


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
        for row in _jsonl(path):
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
    return sorted({row["topic"] for p in Path(factscore_dir).glob("*.jsonl") for row in _jsonl(p)})
