"""Our atomic-fact splitter against FActScore's splitter, both scored on FActScore's human facts.

Reads FActScore's labelled files (``*.jsonl`` with ``annotations``: per sentence
``model-atomic-facts`` from InstructGPT and ``human-atomic-facts`` from annotators) from any
directory below ``--data``. Each annotated sentence that has human facts is split by our
splitter (topic given); FActScore's facts for it are read from the file. Per bio it prints:

- fact count ratio: produced facts / human facts (mean over bios, and the share of bios
  within 15% of the human count);
- human facts matched: share of human facts with a produced fact that matches;
- produced facts matched: share of produced facts with a human fact that matches.

Two facts match when the F1 of their content words is at least ``MATCH_F1``: words are
lowercased, stopwords, pronouns and the topic's own name are dropped (so "He was born in
1949" and "Lanny Flaherty was born in 1949" match), and a final "s" is cut. Matching is
one-to-one within a bio, greedy by F1. Human facts labelled ``IR`` count too: they are what
annotators split out.

Usage:
    python benchmarks/atomic_facts.py --data ../shared/data [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

#: Least content-word F1 for two facts to count as the same fact.
MATCH_F1 = 0.5
#: A bio's produced count is "close" when within this share of the human count.
COUNT_TOLERANCE = 0.15

_STOP = set("""a an the of in on at to for by with from and or but as is was were are be been
being has have had do does did this that these those it its he she his her him they their them
who which whom whose also other some such than then there very into over under about after
before during s""".split())


def content_words(text: str, topic: str) -> set[str]:
    """Lowercased content words of ``text`` without stopwords and the topic's name."""
    drop = _STOP | {w.lower() for w in re.findall(r"\w+", topic)}
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in re.findall(r"\w+", text.lower()) if w not in drop}


def f1(a: set[str], b: set[str]) -> float:
    """F1 of two word sets (0 when either is empty)."""
    common = len(a & b)
    if not common:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


def match_counts(produced: list[str], human: list[str], topic: str) -> tuple[int, int]:
    """One-to-one greedy matching by F1; returns the number of matched pairs."""
    P = [content_words(t, topic) for t in produced]
    H = [content_words(t, topic) for t in human]
    pairs = sorted(((f1(p, h), i, j) for i, p in enumerate(P) for j, h in enumerate(H)),
                   reverse=True)
    used_p, used_h, n = set(), set(), 0
    for score, i, j in pairs:
        if score < MATCH_F1:
            break
        if i in used_p or j in used_h:
            continue
        used_p.add(i)
        used_h.add(j)
        n += 1
    return n, n


def load_bios(data: Path, limit: int | None) -> list[dict]:
    """FActScore rows with annotations, from every labelled ``*.jsonl`` below ``data``."""
    rows = []
    for path in sorted(data.rglob("*.jsonl")):
        with path.open() as fh:
            first = fh.readline()
        if '"annotations"' not in first:
            continue
        file_rows = [json.loads(line) for line in path.open() if line.strip()]
        file_rows = [r for r in file_rows if r.get("annotations")]
        rows.extend(dict(r, _file=path.name) for r in file_rows[:limit])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="directory holding FActScore's labelled jsonl")
    ap.add_argument("--limit", type=int, default=None, help="bios per file")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    from halt_eval.judges.atomic_facts import AtomicFactSplitter
    from halt_eval.types import Response

    bios = load_bios(args.data, args.limit)
    if not bios:
        print(f"no FActScore labelled files under {args.data}", file=sys.stderr)
        return 2
    splitter = AtomicFactSplitter()
    stats = {"ours": [], "factscore": []}
    t0 = time.perf_counter()
    n_sent = 0
    for bio in bios:
        sents = [a for a in bio["annotations"] if a.get("human-atomic-facts")]
        if not sents:
            continue
        n_sent += len(sents)
        topic = bio["topic"]
        responses = [Response(f"{topic}#{k}", "bio", bio["input"], a["text"], {"topic": topic})
                     for k, a in enumerate(sents)]
        ours = [p.text for ps in splitter.split([a["text"] for a in sents], responses) for p in ps]
        theirs = [f["text"] for a in sents for f in a.get("model-atomic-facts") or []]
        human = [f["text"] for a in sents for f in a["human-atomic-facts"]]
        for name, produced in (("ours", ours), ("factscore", theirs)):
            n, _ = match_counts(produced, human, topic)
            stats[name].append((len(produced), len(human), n))
    elapsed = time.perf_counter() - t0

    def figures(rows):
        ratios = [p / h for p, h, _ in rows if h]
        return {
            "count_ratio_mean": statistics.fmean(ratios),
            "count_ratio_median": statistics.median(ratios),
            "bios_within_15pct": sum(abs(r - 1) <= COUNT_TOLERANCE for r in ratios) / len(ratios),
            "count_ratio_total": sum(p for p, _, _ in rows) / sum(h for _, h, _ in rows),
            "human_matched": sum(n for *_, n in rows) / sum(h for _, h, _ in rows),
            "produced_matched": sum(n for *_, n in rows) / max(1, sum(p for p, _, _ in rows)),
        }

    ours, theirs = figures(stats["ours"]), figures(stats["factscore"])
    machine = f"{platform.machine()} {platform.system()}, 2 shared cores"
    print(f"bios {len(stats['ours'])}, sentences {n_sent}; match = content-word F1 >= {MATCH_F1}")
    print("measure | ours | factscore | ratio | n | machine")
    for key in ours:
        ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
        print(f"{key} | {ours[key]:.3f} | {theirs[key]:.3f} | {ratio:.2f} | {len(stats['ours'])} | {machine}")
    print(f"our splitter: {n_sent / elapsed:.1f} sentences/s (one run, incl. parsing; noisy shared machine)")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "factscore": theirs, "bios": len(stats["ours"]),
                                         "sentences": n_sent, "match_f1": MATCH_F1}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
