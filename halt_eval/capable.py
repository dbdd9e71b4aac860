"""HALT's ``n_capable``: a pass over the rows of one prompt once all its samples are scored.

The paper also reports completeness against what the model is capable of: the needed count of a
prompt is the count of correct fragments (``n_correct``) the model reaches in its best sample.
It is a property of the prompt's samples together, so it is set after they are all scored:

- every row gets ``evidence["n_capable"]``, and the catalogue's ``completeness_capable``
  (``n_correct / n_capable`` capped at 1; ``rules.completeness_capable``) is reported beside
  the reference-based ``completeness`` in every mode;
- under the needed-count mode ``capable`` (``--n-desired capable``, task metadata
  ``n_desired: capable``) it is also the row's needed count: ``n_desired = n_capable``, and
  ``completeness`` and ``f1`` are computed against it (the mode is in the row's
  ``judge_spec["n_desired"]``; the gate refuses to pair rows scored under different modes).

A prompt is ``(task, id)``; its samples are the rows sharing it (``sample`` 0 … N-1). With one
sample per prompt, ``n_capable`` is that sample's own ``n_correct``, so ``completeness_capable``
is 1 for any answer with a correct fragment (undefined with none): the measure says something
only with several samples per prompt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from halt_eval import rules
from halt_eval.types import ScoredResponse

PromptKey = tuple[str, str]


def prompt_key(row: ScoredResponse) -> PromptKey:
    """The prompt a row answers: ``(task, id)``."""
    return (row.response.task or "", row.response.id)


def with_capable(rows: Sequence[ScoredResponse], capable: int | None = None) -> list[ScoredResponse]:
    """The rows of ONE prompt with ``evidence["n_capable"]`` set (and, under the mode
    ``capable``, ``n_desired``). ``capable`` overrides the count taken from ``rows`` (used when
    some of the prompt's rows were scored earlier, as on ``--resume``)."""
    k = rules.n_capable([r.n_correct for r in rows]) if capable is None else capable
    out = []
    for r in rows:
        changes: dict = {"evidence": {**r.evidence, "n_capable": k}}
        if r.judge_spec.get("n_desired") == rules.CAPABLE:
            changes["n_desired"] = k
        out.append(replace(r, **changes))
    return out


def assign_capable(rows: Iterable[ScoredResponse]) -> list[ScoredResponse]:
    """Every row with its prompt's ``n_capable`` set, in the order given."""
    rows = list(rows)
    groups: dict[PromptKey, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[prompt_key(r)].append(i)
    out: list[ScoredResponse | None] = [None] * len(rows)
    for idx in groups.values():
        for i, r in zip(idx, with_capable([rows[i] for i in idx])):
            out[i] = r
    return out  # type: ignore[return-value]


class PromptBuffer:
    """Scored rows released in input order, each once every sample of its prompt is scored
    (what ``halt-eval score`` writes as it goes: a row is written with its final
    ``n_capable``, and a prompt's rows never straddle a cut-off run's end except mid-write).

    Args:
        expected: Per prompt, how many rows are still to be scored.
        earlier: Per prompt, the best ``n_correct`` of its rows already written (``--resume``).
    """

    def __init__(self, expected: Mapping[PromptKey, int],
                 earlier: Mapping[PromptKey, int] | None = None) -> None:
        self.expected = dict(expected)
        self.earlier = dict(earlier or {})
        self.scored: dict[PromptKey, list[ScoredResponse]] = defaultdict(list)
        self.queue: list[tuple[PromptKey, int]] = []  # (prompt, position in its group)
        self.final: dict[PromptKey, list[ScoredResponse]] = {}
        self.head = 0

    def add(self, rows: Iterable[ScoredResponse]) -> list[ScoredResponse]:
        """Take newly scored rows (in input order); return those now ready, in input order."""
        for r in rows:
            key = prompt_key(r)
            self.queue.append((key, len(self.scored[key])))
            self.scored[key].append(r)
            if len(self.scored[key]) >= self.expected.get(key, 0):
                group = self.scored.pop(key)
                best = max(rules.n_capable([g.n_correct for g in group]), self.earlier.get(key, 0))
                self.final[key] = with_capable(group, best)
        ready = []
        while self.head < len(self.queue) and self.queue[self.head][0] in self.final:
            key, pos = self.queue[self.head]
            ready.append(self.final[key][pos])
            self.head += 1
            if pos == len(self.final[key]) - 1:
                del self.final[key]
        return ready

    def rest(self) -> list[ScoredResponse]:
        """Rows of prompts whose samples did not all arrive (none after a complete run)."""
        for key in list(self.scored):
            self.final[key] = with_capable(self.scored.pop(key))
        return self.add([])
