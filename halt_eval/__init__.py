"""halt-eval: fragment-level correctness, completeness and F1 of model answers (HALT).

``import halt_eval`` loads no judge dependency; judges import theirs when built.
"""

from halt_eval.registry import get_judge
from halt_eval.score import Scorer, score
from halt_eval.types import Fragment, Judge, Judgement, JudgeRequest, Response, ScoredResponse, Verdict

__all__ = [
    "Fragment",
    "Verdict",
    "Response",
    "ScoredResponse",
    "Judge",
    "JudgeRequest",
    "Judgement",
    "Scorer",
    "score",
    "get_judge",
]
__version__ = "0.1.0"
