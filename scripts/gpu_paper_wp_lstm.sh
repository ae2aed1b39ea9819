#!/usr/bin/env bash
# The paper-scale War and Peace LSTM on one GPU (issue #6), as one prepared command for a GPU session.
#
#   mkdir -p gpu-data && cp ../shared/data/warpeace_input.txt gpu-data/    # git-ignored; carry it along
#   bash scripts/gpu_paper_wp_lstm.sh                                      # on the GPU machine
#
# Trains a 2-layer LSTM at the 1.3M-parameter budget with the paper's recipe (50 epochs at batch 100 x unroll
# 100, RMSProp 2e-3, lr x0.95 per epoch after epoch 10, best-on-validation weights), dropout 0.25, then
# evaluates it on the test split. Writes into $OUT (default runs/gpu): device.txt (nvidia-smi), train.json,
# eval.json, and the run's config.json, summary.json and metrics.jsonl. It needs torch (with CUDA), numpy,
# safetensors, matplotlib and tqdm, and runs rnnlens from src/ (no install). Run it again to resume.
# Overrides: LAYERS, DROPOUT, EPOCHS, DEVICE, OUT, PY, RNNLENS_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
LAYERS=${LAYERS:-2}
DROPOUT=${DROPOUT:-0.25}
EPOCHS=${EPOCHS:-50}
export RNNLENS_DATA=${RNNLENS_DATA:-gpu-data}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
run="$OUT/wp-lstm-${LAYERS}l-1.3m"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") > "$OUT/device.txt"
if [ -f "$run/config.json" ]; then
  "$PY" -m rnnlens train --resume --out "$run" --device "$DEVICE" --quiet --json > "$OUT/train.json"
else
  "$PY" -m rnnlens train --dataset warpeace --model lstm --layers "$LAYERS" --params 1.3m --dropout "$DROPOUT" \
      --epochs "$EPOCHS" --device "$DEVICE" --out "$run" --quiet --json > "$OUT/train.json"
fi
"$PY" -m rnnlens eval "$run" --split test --device "$DEVICE" --json > "$OUT/eval.json"
cp "$run/config.json" "$run/summary.json" "$run/metrics.jsonl" "$OUT/"
echo "done: $OUT (test loss in eval.json; the paper's best War and Peace LSTM: 1.077 nats/char)" >&2
