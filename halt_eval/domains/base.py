"""What a domain is: one record that holds everything the scorer, the data loaders, the lm-eval
glue, the LLM judge and the command line need to know about it.

Records hold registry names and import strings, not classes, so reading a record imports no
judge. Adding a domain is one record (and, for lm-eval, one task folder).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FragmentKind = Literal["independent", "dependent"]

#: Appended to every built-in prompt: HALT's abstention instruction.
ABSTAIN_HINT = 'If you are not sure how to go on, write "Unsure from Here" and stop.'


@dataclass(frozen=True, slots=True)
class Source:
    """One dataset a domain's tasks read.

    Attributes:
        name: Source name used in task metadata (``source: math500``).
        load: ``"module:function"``; called as ``function(rows, task=..., domain=..., source=...)``
            with the raw rows (``None`` when ``local``, ``hub`` and ``url`` are all empty: the
            loader finds its own data) and returns docs (see ``Domain.doc``).
        local: Path of the file under the data directory, in the layout of ``shared/data``.
        hub: ``(repo, config, split)`` on the Hugging Face Hub that ``url`` is a file of, or
            ``None`` (provenance; the rows are read from ``url``).
        revision: The commit (GitHub) or dataset revision (Hub) ``url`` is pinned to.
        url: Where the rows are online (JSONL, JSON or Parquet), pinned to ``revision``: a raw
            GitHub URL of the dataset's own release, or the Hub's file URL
            ``https://huggingface.co/datasets/<repo>/resolve/<revision>/<path>``; or ``None``.
        license: The dataset's license, for task READMEs and results.
    """

    name: str
    load: str
    local: str = ""
    hub: tuple[str, str | None, str] | None = None
    revision: str | None = None
    url: str | None = None
    license: str = ""

    def loader(self) -> Callable[..., list[dict[str, Any]]]:
        return _resolve(self.load)


@dataclass(frozen=True, slots=True)
class Domain:
    """Everything a domain is.

    Attributes:
        name: The domain's name (``math``); rows and docs carry it.
        description: One line for ``--help`` and the README.
        kind: ``dependent`` (wrong after the first error) or ``independent`` fragments.
        fragment: What a fragment is, in words (``reasoning step``).
        splitter: Registry name of the splitter (``halt_eval.registry.SPLITTERS``).
        judge: Registry name of the embedded judge (``halt_eval.registry.JUDGES``).
        judge_kwargs: Options the domain passes to its judge (``{"coverage": True}``).
        splitter_kwargs: Options the domain passes to its splitter.
        n_desired: Default needed-count mode: ``reference``, ``reference_recall`` or ``fixed:K``.
        reference_text: Reference fields holding the reference answer that ``reference`` mode
            splits, tried in order.
        reference_help: The reference schema, one line, for ``--help`` and errors.
        sources: Datasets the domain's tasks load, by source name.
        llm_policy: The LLM judge's policy for this domain (``claims``, ``math_first_error``,
            ``code_first_error``), or ``None`` when no LLM judge applies.
        llm_policy_options: Options for that policy (``{"coverage": True}`` for med).
        llm_splitter: Registry name of the LLM splitter that may replace ``splitter``, or ``None``.
        corpus_option: Whether ``--corpus`` (a reference corpus) applies to the judge.
        repeats_count: Whether a fragment repeating an earlier one of the same answer adds to
            ``n_correct`` (code: a program rightly repeats ``return False``); elsewhere a repeat
            is padding and does not count (``rules.counted``).
    """

    name: str
    description: str
    kind: FragmentKind
    fragment: str
    splitter: str
    judge: str
    n_desired: str
    judge_kwargs: Mapping[str, Any] = field(default_factory=dict)
    splitter_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reference_text: tuple[str, ...] = ()
    reference_help: str = ""
    sources: Mapping[str, Source] = field(default_factory=dict)
    llm_policy: str | None = None
    llm_policy_options: Mapping[str, Any] = field(default_factory=dict)
    llm_splitter: str | None = None
    corpus_option: bool = False
    repeats_count: bool = False

    def doc(self, task: str, source: str, rid: Any, prompt: str,
            reference: Mapping[str, Any]) -> dict[str, Any]:
        """One task document. ``reference`` is stored as JSON text: Arrow cannot hold the
        mixed types of test inputs, and a string survives lm-eval's sample logs unchanged."""
        import json

        return {"id": str(rid), "task": task, "domain": self.name, "source": source,
                "prompt": prompt, "reference": json.dumps(dict(reference), ensure_ascii=False)}


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
