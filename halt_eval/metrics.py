"""Temporary: re-exports for modules not yet moved to ``halt_eval.catalogue`` and
``halt_eval.stats`` (see /work/coord/requests.md). Remove once nothing imports it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from halt_eval import catalogue
from halt_eval.catalogue import METRICS  # noqa: F401
from halt_eval.stats import mean_defined, pooled_ratio  # noqa: F401
from halt_eval.types import ScoredResponse


def summarize(rows: Sequence[ScoredResponse | Mapping[str, Any]]) -> dict[str, Any]:
    """``catalogue.summarize``, also taking serialized rows."""
    return catalogue.summarize([r if isinstance(r, ScoredResponse) else ScoredResponse.from_dict(r)
                                for r in rows])
