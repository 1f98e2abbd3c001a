#!/usr/bin/env bash
# The README's encoder comparison: configs/quick.py's data and training
# budget for each variant, then held-out metrics on the same 300 test
# programs. The block encoding's and 6-round graph's steps are scaled so that
# they train as long as the graph's 1,500 steps, by step times measured here
# in one run (bench/train_speed.py). Usage: bash bench/compare_encoders.sh [ROOT]
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

rounds_ms=$(step_ms --config.model.graph_rounds=6)
rounds_steps=$(python -c "print(round(1500 * $graph_ms / $rounds_ms))")

# Every row is scored on the same 300 test programs of $root/data, whose
# labels are drawn as the sampler draws them (canonical_labels=False).
run() {  # name, data directory, then config overrides
  name=$1; data=$2; shift 2
  python train.py --config=configs/quick.py --workdir="$root/$name" \
    --config.data_dir="$data" "$@"
  python eval.py --workdir="$root/$name" --data_dir="$root/data" \
    --split=test --num_examples=300 --beam_size=8
}
plain=--config.data.sampler.canonical_labels=False
run graph "$root/data" "$plain"  # Generates $root/data first.
run graph_without_values "$root/data" "$plain" --config.graph.use_values=False
run blocks_permute "$root/data" "$plain" --config.input.encoder=blocks \
  --config.blocks.augment=permute --config.input.batch_size=16 \
  --config.steps="$block_steps"
run blocks "$root/data" "$plain" --config.input.encoder=blocks \
  --config.input.batch_size=16 --config.steps="$block_steps"
run graph_6_rounds "$root/data" "$plain" --config.model.graph_rounds=6 \
  --config.steps="$rounds_steps"
run graph_canonical_labels "$root/data_canonical"  # configs/data.py's default.
