"""Names the halt_math variant YAMLs bind (their own metric_list needs the pooled aggregation)."""

from halt_eval.catalogue import micro_correctness  # noqa: F401
