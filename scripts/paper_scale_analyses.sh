#!/usr/bin/env bash
# The analyses of results/paper-scale-cpu/ on one shipped model: test loss, interpretable cells (--find over the
# whole 330,000-character WP test split) and the tanh(c)/h histogram, gate saturation (LSTM and GRU).
# Usage: scripts/paper_scale_analyses.sh MODEL_NAME   (reads models/MODEL_NAME; needs the corpus, see `rnnlens data`)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: $0 MODEL_NAME}
M=models/$name
R=results/paper-scale-cpu/$name
RL=${RNNLENS:-.venv/bin/rnnlens}
mkdir -p "$R"
$RL eval "$M" --split test --threads 1 --json > "$R/eval.json"
$RL cells "$M" --find --max-chars 330000 --out "$R/cells" --threads 1 --json > "$R/cells.json"
$RL cells "$M" --histogram --out "$R/cells" --threads 1 --json > "$R/histogram.json"
cell=$(python3 -c "import json; print(json.load(open('$M/config.json'))['model']['cell'])")
if [ "$cell" != rnn ]; then
  $RL gates "$M" --split test --out "$R/gates" --threads 1 --json > "$R/gates.json"
fi
rm -f "$R"/cells/*.tmp
echo "wrote $R"
