#!/usr/bin/env bash
# The paper-scale War and Peace LSTM on one GPU, as one prepared command for a GPU session.
#
#   mkdir -p gpu-data && cp ../shared/data/warpeace_input.txt gpu-data/    # git-ignored; carry it along
#   bash scripts/gpu_paper_wp_lstm.sh                                      # on the GPU machine
#   PRECISION=bf16 bash scripts/gpu_paper_wp_lstm.sh                       # the bf16 variant
#
# Trains a 2-layer LSTM at the 1.3M-parameter budget with the paper's recipe (50 epochs at batch 100 x unroll
# 100, RMSProp 2e-3, lr x0.95 per epoch after epoch 10, best-on-validation weights), dropout 0.3, then
# evaluates it on the test split. The run itself is written under $RUNS (default runs/gpu, outside $OUT:
# the device tool sets $OUT and brings back only small files); the small JSON results are copied to $OUT
# (default runs/gpu-out): device.txt (nvidia-smi), train.json, eval.json, and the run's config.json,
# summary.json and metrics.jsonl. It needs torch (with CUDA), numpy, safetensors, matplotlib and tqdm, and runs
# rnnlens from src/ (no install). Run it again to resume.
# Overrides: LAYERS, DROPOUT, EPOCHS, PRECISION (fp32, bf16, auto), DEVICE, RUNS, OUT, PY, RNNLENS_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-runs/gpu-out}
RUNS=${RUNS:-runs/gpu}
DEVICE=${DEVICE:-cuda}
LAYERS=${LAYERS:-2}
DROPOUT=${DROPOUT:-0.3}
EPOCHS=${EPOCHS:-50}
PRECISION=${PRECISION:-fp32}
export RNNLENS_DATA=${RNNLENS_DATA:-gpu-data}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT" "$RUNS"
run="$RUNS/wp-lstm-${LAYERS}l-1.3m-d${DROPOUT}-${PRECISION}"
tag="$(basename "$run")"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") > "$OUT/device.txt"
if [ -f "$run/config.json" ]; then
  "$PY" -m rnnlens train --resume --out "$run" --device "$DEVICE" --quiet --json > "$OUT/$tag.train.json"
else
  "$PY" -m rnnlens train --dataset warpeace --model lstm --layers "$LAYERS" --params 1.3m --dropout "$DROPOUT" \
      --epochs "$EPOCHS" --precision "$PRECISION" --device "$DEVICE" --out "$run" --quiet --json > "$OUT/$tag.train.json"
fi
"$PY" -m rnnlens eval "$run" --split test --device "$DEVICE" --json > "$OUT/$tag.eval.json"
for f in config.json summary.json metrics.jsonl; do cp "$run/$f" "$OUT/$tag.$f"; done
echo "done: $OUT/$tag.* (test loss in $tag.eval.json; the paper's best War and Peace LSTM: 1.077 nats/char)" >&2
