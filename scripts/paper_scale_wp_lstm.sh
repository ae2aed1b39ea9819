#!/usr/bin/env bash
# The War and Peace LSTM's analyses of results/paper-scale-cpu/wp-lstm-1.3m/ beyond scripts/paper_scale_analyses.sh:
# `compare` against the 20-gram and the n-NNs (with the training dynamics from its snapshots), `errors` by the
# oracles (literal and `--memory-match predict`, and against the 50K LSTM for the scaling comparison), and the
# ablations of its quote cell and line-position cell (the best cells `cells --find` reported) and the causal
# census of the last layer. Run scripts/paper_scale_analyses.sh wp-lstm-1.3m first (it writes cells.json).
# Usage: scripts/paper_scale_wp_lstm.sh [MODEL_NAME]   (default wp-lstm-1.3m; needs the corpus, see `rnnlens data`)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-wp-lstm-1.3m}
M=models/$name
R=results/paper-scale-cpu/$name
RL=${RNNLENS:-.venv/bin/rnnlens}
[ -f "$R/cells.json" ] || { echo "no $R/cells.json: run scripts/paper_scale_analyses.sh $name first" >&2; exit 1; }
best() {  # the best cell of feature $1 as L:I (layers.L.c index I)
  python3 -c "
import json, sys
f = [f for f in json.load(open('$R/cells.json'))['features'] if f['name'] == '$1'][0]['best'][0]
print(f['layer'].split('.')[1] + ':' + str(f['index']))"
}
$RL errors "$M" --threads 1 --out "$R/errors" --json > /dev/null
$RL errors "$M" --vs models/wp-lstm-50k --threads 1 --out "$R/errors-vs-50k" --json > /dev/null
$RL errors "$M" --memory-match predict --threads 1 --out "$R/errors-memory-predict" --json > /dev/null
$RL compare "$M" --ngram 20 --nnn 1 2 3 4 --nnn-hidden 128,256 --nnn-epochs 5 --nnn-positions 1000000 \
    --threads 1 --out "$R/compare" --json > /dev/null
quote=$(best in_double_quotes); line=$(best line_pos)
$RL ablate "$M" --cell "$quote" --max-chars 100000 --threads 1 --out "$R/ablate-${quote/:/-}" --json > /dev/null
$RL ablate "$M" --cell "$line" --max-chars 100000 --threads 1 --out "$R/ablate-${line/:/-}" --json > /dev/null
$RL ablate "$M" --rank --layer 1 --max-chars 10000 --threads 1 --out "$R/ablate-rank-1" --json > /dev/null
rm -rf "$R"/*/cache "$R"/*/*.tmp  # score caches (tens of MB) are not committed; rerunning rebuilds them
echo "wrote $R (quote cell $quote, line-position cell $line)"
