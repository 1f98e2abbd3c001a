#!/usr/bin/env bash
# The accuracy benchmark: configs/cpu.py end to end (data, training, held-out
# metrics). Usage: bash bench/accuracy.sh [WORKDIR] [extra train.py flags]
set -euo pipefail
workdir=${1:-/tmp/inverse_tracr_cpu}
shift || true
python train.py --config=configs/cpu.py --workdir="$workdir" "$@"
