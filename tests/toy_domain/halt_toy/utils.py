"""The names the toy task binds: the same glue every halt task uses."""

from halt_eval.catalogue import micro_correctness  # noqa: F401
from halt_eval.lmeval import load, process_results, score_filter  # noqa: F401
