"""Wikipedia as the knowledge source for biographies: page text through the MediaWiki Action API.

The retrieval judge (``halt_eval.judges.retrieval_claims``) uses this source for a bio
reference that carries no ``passages`` when no ``--corpus`` is given. For a topic it asks
``action=query&prop=extracts&explaintext=1&redirects=1&format=json&titles=TOPIC`` and indexes the
page's plain text as the topic's own document (as FActScore does with its Wikipedia dump).

- **Endpoint**: ``$HALT_WIKIPEDIA_API`` (default ``DEFAULT_API``, the English Wikipedia);
  ``off`` turns the source off.
- **Politeness**: a User-Agent naming halt-eval and where to reach it (``USER_AGENT``), at
  most ``MAX_CONCURRENCY`` requests at a time per process, retries with exponential backoff on
  network errors, HTTP 429 and 5xx (``Retry-After`` honoured up to ``MAX_BACKOFF`` seconds).
- **Cache**: an SQLite file, ``$HALT_WIKIPEDIA_CACHE`` (default
  ``~/.cache/halt-eval/wikipedia.sqlite``), keyed by endpoint and title. Pages and missing
  pages are both stored, so each title is asked once, ever; a second run makes no request.
- **Offline**: after the first request that fails all its retries the source stops asking for
  the rest of the run (no retry storm); topics not in the cache raise ``WikipediaUnavailable``
  whose message says how to get a knowledge source. The judge turns that into an
  ``unverifiable`` verdict and says it once on stderr.

``halt-eval corpus TOPICS.txt -o corpus.jsonl`` (``configure``/``run`` here) fetches the pages of
a list of topics ahead of time and writes a ``{title, text}`` JSONL corpus for ``--corpus`` on
machines without internet.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_ENV = "HALT_WIKIPEDIA_API"
CACHE_ENV = "HALT_WIKIPEDIA_CACHE"
DEFAULT_API = "https://en.wikipedia.org/w/api.php"
#: Requests in flight at once, per process (Wikimedia asks clients to keep it low).
MAX_CONCURRENCY = 4
#: Attempts per request (the first and the retries).
ATTEMPTS = 4
#: First backoff in seconds; doubled after each failed attempt.
BACKOFF = 0.5
#: Longest wait between attempts, also the cap on a server's Retry-After.
MAX_BACKOFF = 30.0
#: Seconds before a request is given up.
TIMEOUT = 20.0
USER_AGENT = ("halt-eval/0.1 (LLM evaluation harness; fetches biography reference pages, "
              "each once, cached; https://pypi.org/project/halt-eval/) python-urllib")
#: How to get a knowledge source, for messages when Wikipedia cannot be reached.
HOW_TO = (f"give bio references a knowledge source: --corpus FILE (FActScore SQLite or {{title, text}} "
          f"JSONL; `halt-eval corpus TOPICS.txt -o corpus.jsonl` builds one where the internet is "
          f"reachable), or reach Wikipedia ({API_ENV} sets the endpoint, {CACHE_ENV} a cache file "
          f"filled elsewhere)")

_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENCY)


class WikipediaUnavailable(RuntimeError):
    """The API cannot be reached and the page is not in the cache (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched title: ``text`` is ``None`` when Wikipedia has no such page.

    Attributes:
        title: The title asked for.
        resolved: The page's own title after normalisation and redirects.
        text: The page's plain text, or ``None`` for a missing page.
    """

    title: str
    resolved: str
    text: str | None


def default_cache() -> Path:
    """``$HALT_WIKIPEDIA_CACHE`` or ``~/.cache/halt-eval/wikipedia.sqlite`` (XDG_CACHE_HOME honoured)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "halt-eval" / "wikipedia.sqlite"


def configured_api() -> str | None:
    """The endpoint from ``$HALT_WIKIPEDIA_API`` (``DEFAULT_API`` when unset), ``None`` when ``off``."""
    api = os.environ.get(API_ENV, "").strip() or DEFAULT_API
    return None if api.lower() in {"off", "none", "0"} else api


class Wikipedia:
    """Page texts from a MediaWiki Action API endpoint, cached on disk.

    Has the interface ``retrieve`` uses of a corpus (``key``, ``topic_index``,
    ``global_index``), so the judge treats a page as the topic's own document.

    Args:
        api: Endpoint URL (default: ``configured_api()``, else ``DEFAULT_API``).
        cache: SQLite cache file (default: ``default_cache()``).
        attempts, backoff, timeout: Retry policy.
        concurrency: Threads for ``prefetch`` (requests are also capped per process).
    """

    def __init__(self, api: str | None = None, cache: str | Path | None = None, *,
                 attempts: int = ATTEMPTS, backoff: float = BACKOFF, timeout: float = TIMEOUT,
                 concurrency: int = MAX_CONCURRENCY) -> None:
        self.api = api or configured_api() or DEFAULT_API
        self.cache_path = Path(cache) if cache is not None else default_cache()
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.key = f"wikipedia:{self.api}"
        self._lock = threading.Lock()
        self._memo: dict[str, Page] = {}
        self.unreachable: str | None = None  # the error that turned the source off for this run
        self.counts = {"requests": 0, "fetched": 0, "missing": 0, "cached": 0, "unavailable": 0}
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS pages (api TEXT NOT NULL, title TEXT NOT NULL, "
                         "resolved TEXT NOT NULL, text TEXT, fetched_at REAL NOT NULL, "
                         "PRIMARY KEY (api, title))")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.cache_path, timeout=30)

    def spec(self) -> str:
        return self.key

    # -- fetching -------------------------------------------------------------------------

    def _cached(self, title: str) -> Page | None:
        with self._db() as conn:
            row = conn.execute("SELECT resolved, text FROM pages WHERE api = ? AND title = ?",
                               (self.api, title)).fetchone()
        return None if row is None else Page(title, row[0], row[1])

    def _store(self, page: Page) -> None:
        with self._lock, self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                         (self.api, page.title, page.resolved, page.text, time.time()))

    def _request(self, title: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({
            "action": "query", "prop": "extracts", "explaintext": 1, "exsectionformat": "plain",
            "redirects": 1, "format": "json", "titles": title})
        req = urllib.request.Request(f"{self.api}?{query}", headers={"User-Agent": USER_AGENT,
                                                                     "Accept": "application/json"})
        wait = self.backoff
        last = ""
        for attempt in range(self.attempts):
            if self.unreachable is not None:
                break
            retry_after = None
            try:
                with _SLOTS:
                    with self._lock:
                        self.counts["requests"] += 1
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code} from {self.api}"
                if e.code != 429 and e.code < 500:
                    raise WikipediaUnavailable(f"{last} for {title!r}; {HOW_TO}") from None
                try:
                    retry_after = float(e.headers.get("Retry-After", ""))
                except (TypeError, ValueError):
                    retry_after = None
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                last = f"cannot reach {self.api} ({reason})"
            if attempt + 1 < self.attempts:
                time.sleep(min(MAX_BACKOFF, retry_after if retry_after is not None else wait))
                wait *= 2
        with self._lock:
            if self.unreachable is None:
                self.unreachable = last or f"cannot reach {self.api}"
        raise WikipediaUnavailable(f"Wikipedia unavailable: {self.unreachable}; {HOW_TO}")

    def page(self, title: str) -> Page:
        """The page for ``title`` (from memory, the cache, else the API).

        Raises:
            WikipediaUnavailable: Not cached and the API cannot be reached.
        """
        if title in self._memo:
            return self._memo[title]
        page = self._cached(title)
        if page is not None:
            with self._lock:
                self.counts["cached"] += 1
        else:
            if self.unreachable is not None:
                with self._lock:
                    self.counts["unavailable"] += 1
                raise WikipediaUnavailable(f"Wikipedia unavailable: {self.unreachable}; {HOW_TO}")
            try:
                page = parse_extract(title, self._request(title))
            except WikipediaUnavailable:
                with self._lock:
                    self.counts["unavailable"] += 1
                raise
            with self._lock:
                self.counts["missing" if page.text is None else "fetched"] += 1
            self._store(page)
        self._memo[title] = page
        return page

    def prefetch(self, titles: Iterable[str]) -> None:
        """Fetch the pages of ``titles`` not yet known, ``concurrency`` at a time (errors are
        left for ``page`` to raise again per title)."""
        todo = [t for t in dict.fromkeys(titles) if t and t not in self._memo]
        if len(todo) < 2:
            return

        def one(title: str) -> None:
            try:
                self.page(title)
            except WikipediaUnavailable:
                pass

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo))) as pool:
            list(pool.map(one, todo))

    # -- the corpus interface retrieve() uses ------------------------------------------------

    def documents(self, title: str) -> list[str]:
        """The page text of ``title`` as one document, or ``[]`` when there is no page."""
        page = self.page(title)
        return [page.text] if page.text and page.text.strip() else []

    def topic_index(self, title: str):
        """The passage index of the topic's page, or ``None`` when Wikipedia has none."""
        from halt_eval.judges.retrieval_claims import _chunked, index_for

        docs = self.documents(title)
        if not docs:
            return None
        resolved = self._memo[title].resolved
        return index_for(f"{self.key}#{resolved}", lambda: _chunked(resolved, docs))

    def global_index(self) -> None:
        """Wikipedia is not searched whole: a topic without a page stays unverifiable."""


def parse_extract(title: str, payload: dict[str, Any]) -> Page:
    """The page of one ``prop=extracts`` answer (``formatversion`` 1 or 2).

    Raises:
        WikipediaUnavailable: The answer is an API error or has no pages.
    """
    if "error" in payload:
        err = payload["error"]
        raise WikipediaUnavailable(f"the API answered an error for {title!r}: "
                                   f"{err.get('code')}: {err.get('info')}")
    query = payload.get("query") or {}
    pages = query.get("pages")
    if isinstance(pages, dict):
        pages = list(pages.values())
    if not pages:
        raise WikipediaUnavailable(f"the API answer for {title!r} holds no page")
    resolved = title
    for step in ("normalized", "redirects"):
        for hop in query.get(step) or []:
            if hop.get("from") == resolved:
                resolved = hop.get("to", resolved)
    page = pages[0]
    if "missing" in page or "invalid" in page or page.get("missing") is True:
        return Page(title, page.get("title", resolved), None)
    return Page(title, page.get("title", resolved), page.get("extract") or "")


# -- halt-eval corpus ----------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Fetch the Wikipedia pages of a list of topics and write a {title, text} "
                          "JSONL corpus for `halt-eval score --corpus` / HALT_CORPUS on machines "
                          f"without internet. Endpoint: ${API_ENV} (default {DEFAULT_API}); pages "
                          f"are cached in ${CACHE_ENV} (default {default_cache()}).")
    parser.add_argument("topics", metavar="TOPICS.txt",
                        help="one topic (page title) per line; 'factscore' for the 183 packaged "
                             "FActScore entities")
    parser.add_argument("-o", "--output", required=True, metavar="CORPUS.jsonl")
    parser.add_argument("--api", help=f"MediaWiki API endpoint (default ${API_ENV} or {DEFAULT_API})")
    parser.add_argument("--cache", help=f"SQLite page cache (default ${CACHE_ENV} or {default_cache()})")


def run(args: argparse.Namespace) -> int:
    if args.topics == "factscore":
        from halt_eval.domains.bio import packaged_topics

        topics = packaged_topics()
    else:
        try:
            topics = [t.strip() for t in Path(args.topics).read_text(encoding="utf-8").splitlines()
                      if t.strip() and not t.lstrip().startswith("#")]
        except OSError as e:
            print(f"halt-eval corpus: cannot read {args.topics}: {e}", file=sys.stderr)
            return 2
    wiki = Wikipedia(api=args.api, cache=args.cache)
    wiki.prefetch(topics)
    missing, failed, written = [], 0, 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for topic in topics:
            try:
                docs = wiki.documents(topic)
            except WikipediaUnavailable as e:
                failed += 1
                error = str(e)
                continue
            if not docs:
                missing.append(topic)
                continue
            # titled as asked: the judge finds a topic's document by the topic's name
            fh.write(json.dumps({"title": topic, "text": docs[0]}, ensure_ascii=False) + "\n")
            written += 1
    c = wiki.counts
    print(f"halt-eval corpus: {written} of {len(topics)} topics written to {out} "
          f"({c['requests']} requests, {c['cached']} from cache {wiki.cache_path})")
    if missing:
        print(f"halt-eval corpus: no page for {len(missing)} topic(s): {', '.join(missing[:10])}"
              + (" ..." if len(missing) > 10 else ""), file=sys.stderr)
    if failed:
        print(f"halt-eval corpus: {failed} topic(s) not fetched: {error}", file=sys.stderr)
        return 1
    return 0
