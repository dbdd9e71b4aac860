"""Shared test helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from halt_eval.domains import Domain
from halt_eval.types import Judgement, Verdict

ROOT = Path(__file__).resolve().parents[1]
# The project's data: HALT_DATA_DIR when set (an unpacked sdist, another checkout), else
# ../shared/data beside the checkout.
SHARED_DATA = Path(os.environ.get("HALT_DATA_DIR") or ROOT.parent / "shared" / "data")
CASES = Path(__file__).resolve().parent / "cases"
# halt-eval finds user data only through --data-dir / HALT_DATA_DIR / task metadata.
os.environ.setdefault("HALT_DATA_DIR", str(SHARED_DATA))
# No test may reach the network: the Wikipedia knowledge source is off unless a test points it at
# its own server on 127.0.0.1; its cache and the data cache live in a throwaway folder.
os.environ.setdefault("HALT_WIKIPEDIA_API", "off")


def toy_domain(kind: str = "independent", n_desired: str = "fixed:3", name: str = "toy",
               judge: str = "labels", splitter: str = "sentences") -> Domain:
    """A domain record for tests that build a ``Scorer`` by hand."""
    return Domain(name=name, description="test domain", kind=kind, fragment="sentence",  # type: ignore[arg-type]
                  splitter=splitter, judge=judge, n_desired=n_desired, reference_text=("solution",))


def run_python(code: str, timeout: float = 300) -> str:
    """``code`` run by this interpreter in a fresh process (what it imports at start-up is its
    own); returns its standard output, after asserting that it exited 0."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def load_cases(name: str) -> list[dict]:
    """Rows of tests/cases/<name>.jsonl, each checked to have name, expected and why."""
    rows = []
    for lineno, line in enumerate((CASES / f"{name}.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"name", "expected", "why"} - row.keys()
        if missing:
            raise ValueError(f"{name}.jsonl:{lineno}: missing {sorted(missing)}")
        rows.append(row)
    return rows


class LabelJudge:
    """A judge that reads its labels from the reference: ``reference["labels"]`` per fragment,
    ``reference["solved"]`` and ``reference["coverage"]``. Lets the metric contract be tested by
    hand without any real judge."""

    name = "labels"
    version = "1"

    def judge(self, batch):
        out = []
        for req in batch:
            ref = req.response.reference
            labels = ref.get("labels", [])
            verdicts = tuple(Verdict(labels[f.index], "labels@1", "given") for f in req.fragments)
            coverage = ref.get("coverage")
            out.append(Judgement(
                verdicts,
                solved=ref.get("solved"),
                coverage=None if coverage is None else tuple(Verdict(c, "labels@1", "given") for c in coverage),
            ))
        return out


@pytest.fixture
def label_judge():
    return LabelJudge()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: tests read the project's shared data beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def code_report_runs(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """Baseline and candidate ``halt_code`` folders scored once per session by ``halt-eval score``
    in the real sandbox, from tests/cases/report_code_answers.jsonl, with the cases."""
    from halt_runs import require_tool

    from halt_eval.cli import main

    require_tool("bwrap", "apt-get install -y bubblewrap")
    root = tmp_path_factory.mktemp("code_report_runs")
    cases = [json.loads(line) for line in (CASES / "report_code_answers.jsonl").read_text().splitlines()
             if line.strip()]
    for side in ("baseline", "candidate"):
        answers = root / f"{side}_answers.jsonl"
        answers.write_text("".join(
            json.dumps({"id": c["name"], "prompt": c["prompt"], "response": c[side],
                        "reference": {"tests": c["tests"]}}) + "\n" for c in cases))
        (root / side).mkdir()
        assert main(["score", str(answers), "--domain", "code", "--task", "halt_code",
                     "-o", str(root / side / "code.jsonl"),
                     "--summary-json", str(root / side / "summary.json")]) == 0
    return root / "baseline", root / "candidate", cases
