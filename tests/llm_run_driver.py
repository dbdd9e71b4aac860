"""Scores a fixed synthetic set with the LLM judge in its own process, for the backend tests.

The tests run it (with the main interpreter against an HTTP server, or with the vLLM venv's
interpreter for the offline engine), kill it with ``kill -9`` mid-run, start it again, and
compare what comes out. It writes one JSON file:
``{"rows": [...scored rows...], "stats": {...}, "engine_start_s": float|None, "elapsed_s": ...}``.

Usage:
    python tests/llm_run_driver.py --options '{"backend": "openai", ...}' --n 40 --out OUT.json
        [--all-domains] [--passes 2] [--long-claim]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from halt_eval.judges.llm import LLMFactSplitter, LLMJudge  # noqa: E402
from halt_eval.judges.llm_client import LLMOptions, make_client  # noqa: E402
from halt_eval.score import Scorer  # noqa: E402
from halt_eval.split import SentenceSplitter  # noqa: E402
from halt_eval.types import Response  # noqa: E402

CITIES = ["Paris", "Lyon", "Oslo", "Lima", "Cairo", "Delhi", "Quito", "Perth"]

#: The LLM policy of each domain these sets come from (their domain records say the same).
POLICY = {"bio": "claims", "math": "math_first_error", "code": "code_first_error"}


def claims_set(n: int, long_claim: bool = False) -> list[Response]:
    """``n`` biographies of 3 facts each (supported, contradicted, not covered), plus one
    claim too long for a 2048-token context with ``long_claim``."""
    out = []
    for i in range(n):
        name, city, year = f"Person {i}", CITIES[i % len(CITIES)], 1900 + i
        passages = [f"{name} was born in {year} in {city}.", f"{name} worked as a painter."]
        frags = (f"{name} was born in {city}.", f"{name} never worked as a painter.",
                 f"{name} won the Turing Award in {year + 50}.")
        out.append(Response(id=f"bio-{i}", domain="bio", prompt=f"Tell me a bio of {name}.",
                            text=" ".join(frags), reference={"topic": name, "passages": passages},
                            fragments=frags))
    if long_claim:  # longer than the engine's context: an error for this prompt alone
        claim = "word " * 6000
        out.append(Response(id="bio-long", domain="bio", prompt="Tell me a bio of Long.",
                            text=claim, reference={"topic": "Long", "passages": ["Long."]},
                            fragments=(claim,)))
    return out


def math_set() -> list[Response]:
    steps = ("We have 2 + 2 = 4.", "Then 4 + 1 = 5.", "So the answer is 5.")
    wrong = ("We have 2 + 3 = 5 here.", "Double it: 10.")
    return [Response("math-0", "math", "What is 2 + 2 + 1?", " ".join(steps),
                     {"answer": "5", "solution": "2 + 2 = 4 and 4 + 1 = 5."}, steps),
            Response("math-1", "math", "What is 2 + 2, doubled?", " ".join(wrong),
                     {"answer": "8", "solution": "2 + 2 = 4, doubled is 8."}, wrong)]


def code_set() -> list[Response]:
    lines = ("def add(a, b):", "    return a - b")
    return [Response("code-0", "code", "Write add(a, b) returning a + b.", "\n".join(lines),
                     {"tests": ["assert add(1, 2) == 3"]}, lines)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--options", required=True, help="LLMOptions as JSON")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--passes", type=int, default=1, help="score the set this many times")
    parser.add_argument("--all-domains", action="store_true", help="also math, code, splitting")
    parser.add_argument("--long-claim", action="store_true", help="one claim past the context")
    args = parser.parse_args()
    t0 = time.perf_counter()
    options = LLMOptions.from_mapping(json.loads(args.options))
    client = make_client(options)
    rows: list[dict] = []
    per_pass: list[dict] = []
    for _ in range(args.passes):
        before = client.stats.as_dict()
        rows = []
        sets = [("bio", claims_set(args.n, args.long_claim))]
        if args.all_domains:
            sets += [("math", math_set()), ("code", code_set())]
        for domain, responses in sets:
            scorer = Scorer.for_domain(domain, judge=LLMJudge(POLICY[domain], client=client),
                                       splitter=SentenceSplitter())
            rows += [s.to_dict() for s in scorer.score(responses)]
        if args.all_domains:
            splitter = LLMFactSplitter(client=client)
            texts = ["Ada was a poet and she lived in Paris.", "Bo is a cook. He likes tea."]
            pieces = splitter.split(texts, [claims_set(1)[0]] * 2)
            rows.append({"id": "split", "pieces": [[[p.text, list(p.span)] for p in ps]
                                                   for ps in pieces]})
        after = client.stats.as_dict()
        per_pass.append({k: after[k] - before[k] for k in after})
    result = {"rows": rows, "stats": client.stats.as_dict(), "passes": per_pass,
              "engine_start_s": getattr(client, "engine_start_s", None),
              "elapsed_s": time.perf_counter() - t0, "cache_rows": len(client.cache)}
    args.out.write_text(json.dumps(result, indent=1))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
