"""Leftovers of running current checkpoints: chat-form code answers (which fenced block is the
code), natural abstention beside the marker, and the judge dry run."""

from __future__ import annotations

import shutil

import pytest

from halt_eval.judges.code_lines import CodeLineSplitter, code_lines, code_region
from halt_eval.types import Response

SOLUTION = "def add(a, b):\n    total = a + b\n    return total\n"
USAGE = "print(add(2, 3))  # 5\n"
#: A chat answer: a prose line, an example-usage block first, then the solution block, then prose.
CHAT = (f"Here is how you would call it, and the function itself:\n```python\n{USAGE}```\n"
        f"The solution:\n```python\n{SOLUTION}```\nThis runs in O(1).")
HUMANEVAL_REF = {"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
                 "entry_point": "add", "prompt": "def add(a, b):\n", "solution": SOLUTION}


def _lines(text: str, entry_point: str | None = None) -> list[str]:
    return [text[a:b] for a, b in (ln.span for ln in code_lines(text, entry_point))]


@pytest.mark.parametrize("text", [
    CHAT,  # usage block before the solution
    f"Solution:\n```python\n{SOLUTION}```\nExample usage:\n```python\n{USAGE}```\n",  # after it
    f"```python\n{SOLUTION}```\nOutput:\n```\n5\n```\n",  # an unlabelled output block after it
])
def test_the_block_defining_the_entry_point_is_the_code(text):
    expected = ["def add(a, b):", "total = a + b", "return total"]
    assert _lines(text, "add") == expected
    # without an entry point: the last complete block that defines a function
    assert _lines(text) == expected
    [pieces] = CodeLineSplitter().split([text], [Response("x", "code", "", text, HUMANEVAL_REF)])
    assert [p.text for p in pieces] == expected
    assert all(text[p.span[0]:p.span[1]] == p.text for p in pieces)


def test_block_choice_falls_back_to_the_last_complete_block_then_an_unclosed_one():
    two = "```python\nx = 1\n```\nthen\n```python\ny = 2\n```\n"
    assert _lines(two) == ["y = 2"]
    # a helper defined in a later block does not win over the block defining the entry point
    helper = f"```python\n{SOLUTION}```\n```python\ndef helper():\n    return 0\n```\n"
    assert _lines(helper, "add")[0] == "def add(a, b):" and _lines(helper)[0] == "def helper():"
    # an answer cut inside its only block (at the marker) keeps that block
    cut = "Sure:\n```python\ndef add(a, b):\n    return"
    assert _lines(cut, "add") == ["def add(a, b):", "return"]
    # a complete block beats one cut short after it
    assert _lines("```python\nx = 1\n```\n```python\ny = (", None) == ["x = 1"]
    # the python block still wins over another language
    mixed = "```py\na = 1\n```\n```text\nnot code\n```\n"
    start, end = code_region(mixed)
    assert mixed[start:end] == "a = 1\n"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_a_chat_answer_with_a_usage_block_is_judged_on_its_solution_block():
    from halt_eval.judges.sandbox_code import SandboxJudge
    from halt_eval.score import Scorer

    scorer = Scorer.for_domain("code", judge=SandboxJudge(test_timeout_s=2.0))
    [scored] = scorer.score([Response("chat", "code", "", CHAT, HUMANEVAL_REF)])
    assert [f.text for f in scored.fragments] == ["def add(a, b):", "total = a + b", "return total"]
    assert [v.label for v in scored.verdicts] == ["correct"] * 3
    assert scored.solved
