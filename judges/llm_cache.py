"""A SQLite cache of LLM replies (and the verdicts parsed from them), safe against ``kill -9``.

Every reply is committed as soon as it arrives (WAL journal), so a run killed at any moment
and started again asks the LLM only for what had not come back yet, and re-scoring identical
samples makes no LLM call at all.

A row is keyed by the SHA-256 of (judge ``name@version``, model, prompt template
``name@version``, input hash), where the input hash covers the rendered chat messages and the
sampling parameters. The parts are also stored in their own columns, so a cache can be
inspected and pruned with plain SQL::

    sqlite3 cache.sqlite "SELECT judge, model, template, count(*) FROM replies GROUP BY 1,2,3"

Known limits: errors (timeouts, HTTP failures) are never cached, so they are retried on the
next run; the cache assumes one writer process at a time per file (a second writer waits up
to ``_BUSY_TIMEOUT_S`` for the lock).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bump when the table layout changes; older files are refused with a message, not misread.
CACHE_SCHEMA = 1
# A second process (another shard of the same run) may hold the write lock briefly.
_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What identifies one LLM reply.

    Attributes:
        judge: ``name@version`` of the judge or splitter that asked.
        model: The model name or path the reply came from.
        template: ``name@version`` of the prompt template.
        input_hash: SHA-256 of the rendered messages and sampling parameters.
    """

    judge: str
    model: str
    template: str
    input_hash: str

    @property
    def digest(self) -> str:
        raw = json.dumps([self.judge, self.model, self.template, self.input_hash])
        return hashlib.sha256(raw.encode()).hexdigest()


def hash_input(messages: Any, params: Mapping[str, Any]) -> str:
    """Stable SHA-256 of the chat messages and sampling parameters."""
    raw = json.dumps({"messages": messages, "params": dict(params)}, sort_keys=True,
                     ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


class ReplyCache:
    """Reply cache in one SQLite file; ``path=None`` keeps it in memory for the process.

    Thread-safe: one connection guarded by a lock (writes are tiny; the LLM is the slow part).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self.path is None else str(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_S, check_same_thread=False,
                                   isolation_level=None)
        if self.path is not None:
            # WAL + NORMAL: a committed row survives the process being killed (not power loss).
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies ("
            " key TEXT PRIMARY KEY, judge TEXT NOT NULL, model TEXT NOT NULL,"
            " template TEXT NOT NULL, input_hash TEXT NOT NULL, reply TEXT NOT NULL,"
            " parsed TEXT, created REAL NOT NULL)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(CACHE_SCHEMA),))
        elif row[0] != str(CACHE_SCHEMA):
            raise RuntimeError(
                f"{self.path}: LLM cache schema {row[0]}, this halt-eval writes {CACHE_SCHEMA}; "
                "point --judge-cache at a new file")

    def get_many(self, keys: Iterable[CacheKey]) -> dict[str, str]:
        """Replies already stored, by ``CacheKey.digest``."""
        digests = list({k.digest for k in keys})
        found: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(digests), 500):  # SQLite's bound-parameter limit
                chunk = digests[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for key, reply in self._db.execute(
                        f"SELECT key, reply FROM replies WHERE key IN ({marks})", chunk):
                    found[key] = reply
        return found

    def put(self, key: CacheKey, reply: str, parsed: Any = None) -> None:
        """Store one reply and commit it at once."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key.digest, key.judge, key.model, key.template, key.input_hash, reply,
                 None if parsed is None else json.dumps(parsed, ensure_ascii=False),
                 time.time()))

    def set_parsed(self, key: CacheKey, parsed: Any) -> None:
        """Record the parsed form of a stored reply (for inspection; never read back)."""
        with self._lock:
            self._db.execute("UPDATE replies SET parsed=? WHERE key=?",
                             (json.dumps(parsed, ensure_ascii=False), key.digest))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
