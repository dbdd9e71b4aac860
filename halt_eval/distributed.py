"""Scoring on a Ray cluster: ``halt-eval score ... --ray [ADDRESS]``.

The answers are cut into the same batches as a single-process run (``--batch-size``); each
batch is one Ray task (``score_batch``), which scores it with the ``Scorer`` of its worker
process and sends the ``ScoredResponse`` objects back. The driver writes them in input
order as they complete: a finished batch waits in a reorder buffer until every batch before
it is written, and at most ``WINDOW_PER_CPU`` batches per cluster CPU are in flight, so the
buffer stays bounded when one batch is slow. Rows are those of a single-process run: the same
batches go through the same ``Scorer.score``, and every judge's verdict depends only on its
answer and its options (``tests/test_ray.py`` compares all fields of 250 rows).

Why tasks with a per-process cache, not an actor pool: a Ray worker process runs many tasks,
so ``score_batch`` keeps its ``Scorer`` in a module-level dict keyed by the scoring options
(``ScorerOptions.key``) and builds it once per process, like an actor would; but tasks leave
placement, load balancing across nodes of different sizes and the retry of a task whose
worker died (an out-of-memory kill, a lost node) to Ray, where an actor pool would have to
re-implement all three. Each task takes ``CPUS_PER_TASK`` CPU, and the judge's own process
pool is sized to that share (``WORKERS_PER_CPU``: one sympy worker, two warm sandboxes per
CPU, the judges' defaults per CPU), so a node runs as many pools as Ray gives it CPUs and
no more processes than a single-process run would start on that node.

What must hold on every node: the same halt-eval (and judge packages) installed, the paths
named in options (``--corpus``, the LLM cache) readable there, bubblewrap for code. The LLM
judge, if composed, calls the served model's URL from every node.

Ray is optional (``pip install 'halt-eval[ray]'``); this module imports it only when a
``RayScoring`` is built.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from halt_eval.score import ScoreConfig, Scorer
from halt_eval.types import Response, ScoredResponse

INSTALL_HINT = "pip install 'halt-eval[ray]'"
#: CPUs Ray reserves for one batch.
CPUS_PER_TASK = 1
#: The judge's own process pool per task CPU, by the judge's registry name: one sympy worker
#: (its default is one per CPU, at most two), two warm sandboxes (its default is two per CPU).
#: A judge not listed here keeps its own default. Pool sizes change speed, never a verdict.
WORKERS_PER_CPU = {"sympy": 1, "sandbox": 2}
#: Batches in flight per cluster CPU (also the most that can wait in the reorder buffer).
WINDOW_PER_CPU = 2


class RayUnavailable(Exception):
    """Ray is missing, or the cluster cannot be reached (a usage error: exit 2)."""


def require_ray():
    """The ``ray`` module, or ``RayUnavailable`` naming the install command."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable(f"--ray needs Ray, which is not installed ({e}): {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class ScorerOptions:
    """Everything a worker needs to build the driver's ``Scorer``: plain, picklable data.

    Attributes:
        domain: Domain name (or ``module:ATTR``, importable on every node).
        config: The driver's ``ScoreConfig`` (markers, completeness mode, reasoning span,
            natural abstention): every scoring option travels, so rows match a local run.
        judge_kwargs: The domain judge's options (``--judge-arg``, ``--corpus``).
        llm: LLM judge options (``LLMOptions.to_dict()``).
    """

    domain: str
    config: ScoreConfig = field(default_factory=ScoreConfig)
    judge_kwargs: Mapping[str, Any] = field(default_factory=dict)
    llm: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """The cache key of the worker's ``Scorer``."""
        return json.dumps(asdict(self), sort_keys=True, default=repr)

    def build(self, cpus: float | None = None) -> Scorer:
        """The ``Scorer``; with ``cpus``, the judge's process pool is sized to that many CPUs
        (``WORKERS_PER_CPU``) unless the options name a pool size."""
        from halt_eval.domains import get_domain

        kwargs = dict(self.judge_kwargs)
        record = get_domain(self.domain)
        per_cpu = WORKERS_PER_CPU.get(record.judge)
        if cpus and per_cpu and "workers" not in kwargs and "workers" not in record.judge_kwargs:
            kwargs["workers"] = max(1, int(per_cpu * cpus))
        return Scorer.for_domain(self.domain, judge_kwargs=kwargs, llm=dict(self.llm),
                                 config=self.config)


#: This process's scorers, by ``ScorerOptions.key()``, least recently used first: built on a
#: worker's first batch of a run. A worker outlives runs on a long-lived cluster, so only
#: ``MAX_SCORERS`` are kept; the judge of one dropped is closed (its processes stopped).
_SCORERS: dict[str, Scorer] = {}
MAX_SCORERS = 4


def scorer_for(options: ScorerOptions, cpus: float | None = CPUS_PER_TASK) -> Scorer:
    """The cached ``Scorer`` for ``options`` in this process (built on first use)."""
    key = options.key()
    scorer = _SCORERS.pop(key, None)
    if scorer is None:
        scorer = options.build(cpus)
    _SCORERS[key] = scorer
    while len(_SCORERS) > MAX_SCORERS:
        old = _SCORERS.pop(next(iter(_SCORERS)))
        close = getattr(old.judge, "close", None)
        if callable(close):
            close()
    return scorer


def score_batch(options: ScorerOptions, batch: Sequence[Response]) -> tuple[list[ScoredResponse], dict | None]:
    """One Ray task: the batch scored by this process's ``Scorer``, and what the judge's
    counters (the LLM judge's calls, cache hits ...) grew by meanwhile, if it keeps any."""
    scorer = scorer_for(options)
    before = _judge_stats(scorer)
    scored = scorer.score(list(batch))
    return scored, _grown(before, _judge_stats(scorer))


def _judge_stats(scorer: Scorer) -> dict | None:
    try:
        stats = getattr(scorer.judge, "stats", None)
    except AttributeError:  # a composed judge whose fallback keeps none
        return None
    if stats is None:
        return None
    return dict(stats() if callable(stats) else stats)


def _grown(before: dict | None, after: dict | None) -> dict | None:
    if after is None:
        return None
    before = before or {}
    return {k: (v - before.get(k, 0) if _number(v) else v) for k, v in after.items()}


def merge_stats(total: dict | None, part: dict | None) -> dict | None:
    """Counters summed; any other value (a note) taken from the latest part that has one."""
    if part is None:
        return total
    merged = dict(total or {})
    for k, v in part.items():
        if _number(v) and _number(merged.get(k, 0)):
            merged[k] = merged.get(k, 0) + v
        elif v or k not in merged:
            merged[k] = v
    return merged


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: Seconds to wait for a TCP connection to the cluster's address (``ray.init`` itself keeps
#: retrying an unreachable address for minutes).
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """``RayUnavailable`` unless something accepts a TCP connection at ``[ray://]HOST:PORT``."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnavailable(f"--ray {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise RayUnavailable(f"--ray: no Ray cluster answers at {address}: {e.strerror or e}") from None


class RayScoring:
    """Batches scored as Ray tasks, handed back in order.

    Args:
        options: The scoring options the workers build their ``Scorer`` from.
        address: ``None`` starts a local Ray instance on this machine's CPUs (and stops it
            on ``close``); ``auto`` or an address (``HOST:PORT``, ``ray://HOST:PORT``)
            connects to a running cluster. If this process is already connected (a caller
            ran ``ray.init``), that connection is used and ``address`` is ignored.

    Raises:
        RayUnavailable: Ray is not installed, or the cluster cannot be reached.
    """

    def __init__(self, options: ScorerOptions, address: str | None = None) -> None:
        ray = require_ray()
        self.options = options
        self.stats: dict | None = None
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            if address and address != "auto":
                _check_reachable(address)
            try:
                if address:
                    ray.init(address=address, logging_level=logging.WARNING)
                else:
                    ray.init(include_dashboard=False, logging_level=logging.WARNING)
                    self._owned = True
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise RayUnavailable(f"--ray: cannot start or reach {where}: {e}") from None
        self._task = ray.remote(num_cpus=CPUS_PER_TASK)(score_batch)

    def cpus(self) -> int:
        """CPUs of the cluster (at least 1)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def map(self, batches: Sequence[Sequence[Response]]) -> Iterator[list[ScoredResponse]]:
        """The scored rows of each batch, in the order of ``batches``, each as soon as it and
        every batch before it are done. Judge counters accumulate in ``self.stats``."""
        ray = self._ray
        options = ray.put(self.options)
        window = WINDOW_PER_CPU * self.cpus()
        pending: dict[Any, int] = {}  # ObjectRef -> batch index
        done: dict[int, list[ScoredResponse]] = {}  # the reorder buffer
        submitted = written = 0
        try:
            while written < len(batches):
                while submitted < len(batches) and submitted - written < window:
                    pending[self._task.remote(options, list(batches[submitted]))] = submitted
                    submitted += 1
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        scored, stats = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # the judge's own error, as itself
                        raise e.as_instanceof_cause() from None
                    done[index] = scored
                    self.stats = merge_stats(self.stats, stats)
                while written in done:
                    yield done.pop(written)
                    written += 1
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop the local Ray instance if this object started it."""
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False
