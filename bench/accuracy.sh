#!/usr/bin/env bash
# The accuracy benchmark: configs/cpu.py end to end (data, training, then
# held-out metrics with eval.py). Usage: bash bench/accuracy.sh [WORKDIR]
set -euo pipefail
workdir=${1:-/tmp/inverse_tracr_cpu}
python train.py --config=configs/cpu.py --workdir="$workdir"
python eval.py --workdir="$workdir" --split=test --num_examples=300
