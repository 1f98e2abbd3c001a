#!/usr/bin/env bash
# The README's encoder comparison: configs/quick.py's data and training
# budget for each variant, then held-out metrics on the same 300 test
# programs. The block encoding's steps are scaled so that it trains as long
# as the graph's 1,500 steps, by step times measured here in one run
# (bench/train_speed.py). Usage: bash bench/compare_encoders.sh [ROOT]
set -euo pipefail
root=${1:-/tmp/inverse_tracr_compare}
mkdir -p "$root"

step_ms() {  # Milliseconds per training step of configs/quick.py + overrides.
  python bench/train_speed.py --config=configs/quick.py --steps=10 "$@" \
    | sed -n 's/^step \([0-9.]*\) ms.*/\1/p'
}
graph_ms=$(step_ms)
blocks_ms=$(step_ms --config.input.encoder=blocks --config.input.batch_size=16)
block_steps=$(python -c "print(round(1500 * $graph_ms / $blocks_ms))")
echo "graph $graph_ms ms/step, blocks $blocks_ms ms/step: blocks train $block_steps steps"

run() {  # name, then config overrides
  name=$1; shift
  python train.py --config=configs/quick.py --workdir="$root/$name" \
    --config.data_dir="$root/data" "$@"
  python eval.py --workdir="$root/$name" --split=test --num_examples=300
}
run graph  # Generates $root/data (configs/quick.py's data group) first.
run graph_without_values --config.graph.use_values=False
run blocks_permute --config.input.encoder=blocks --config.input.augment=permute \
  --config.input.batch_size=16 --config.steps="$block_steps"
run blocks --config.input.encoder=blocks --config.input.batch_size=16 \
  --config.steps="$block_steps"
