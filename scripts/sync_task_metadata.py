"""Write each task YAML's scoring record (rules version, judge, splitter, data pin) into its
``metadata`` from the domain records, so lm-eval's results carry it. Run after a judge's version,
the rules version or a data pin changes; tests/test_tasks.py fails until then.

    python scripts/sync_task_metadata.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from halt_eval.lmeval import task_metadata, tasks_path

KEYS = ("rules_version", "judge", "splitter", "data")


class _Tolerant(yaml.SafeLoader):
    pass


_Tolerant.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def synced(text: str) -> str:
    """The YAML text with its metadata block's scoring keys set."""
    meta = (yaml.load(text, Loader=_Tolerant) or {}).get("metadata") or {}
    if "domain" not in meta or "source" not in meta:
        return text
    want = task_metadata(meta["domain"], meta["source"])
    block = text[text.index("\nmetadata:\n") + 1:]
    lines = [ln for ln in block.splitlines()[1:] if not any(ln.startswith(f"  {k}:") for k in KEYS)]
    lines += [f"  {k}: {yaml.safe_dump(v, default_style=None).strip().removesuffix('...').strip()}"
              for k, v in want.items()]
    return text[:text.index("\nmetadata:\n") + 1] + "metadata:\n" + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report YAMLs that are out of date")
    args = parser.parse_args()
    stale = []
    for path in sorted(Path(tasks_path()).glob("halt_*/*.yaml")):
        text = path.read_text(encoding="utf-8")
        new = synced(text)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
