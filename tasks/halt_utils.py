"""Names the halt task YAMLs bind; everything lives in ``halt_eval.lmeval`` and the catalogue."""

from halt_eval.catalogue import micro_correctness  # noqa: F401
from halt_eval.lmeval import fewshot_target, load, process_results, score_filter  # noqa: F401
