#!/bin/sh
# Runs Braid's benchmarks against their PyTorch peers and prints one Markdown table; see bench/README.md.
# usage: bench/run_all.sh [BUILD_DIR=build] [--reps 3] [--epochs 1] [--steps 0] [--threads 1,2] [--skip ...]
exec python3 "$(dirname "$0")/run_all.py" "$@"
