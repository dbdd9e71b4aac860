"""Names the halt task YAMLs bind; everything lives in ``halt_eval.lmeval``."""

from halt_eval.lmeval import (  # noqa: F401
    count_fragments,
    count_records,
    load,
    micro_correctness,
    process_results,
    score_filter,
)
