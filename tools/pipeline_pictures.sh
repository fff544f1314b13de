#!/bin/bash
# Makes the README's timeline pictures (docs/img/pipeline_1f1b_4ranks.png, docs/img/pipeline_zb_h1_4ranks.png)
# from real 4-rank runs of examples/pipeline with BRAID_TRACE, merged by braid_trace_merge and drawn by
# render_timeline.py (needs /usr/bin/python3 with python3-matplotlib).
#   tools/pipeline_pictures.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, docs/img)
# Run it on a quiet machine: with more ranks than free cores, the ranks' boxes stretch whenever one waits for a
# core (render_timeline.py draws the fastest step to keep that down).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/docs/img}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
# The shared-memory transports only, as the multi-rank tests use (BRAID_MPIEXEC_FLAGS overrides).
flags=${BRAID_MPIEXEC_FLAGS:---mca pml ob1 --mca btl self,vader --mca mtl ^ofi --mca osc ^ucx --mca coll ^hcoll}
[ "$(id -u)" = 0 ] && flags="--allow-run-as-root $flags"
for schedule in 1f1b zb; do
  OMP_NUM_THREADS=1 BRAID_TRACE="$work/$schedule.json" \
    mpiexec $flags --oversubscribe --bind-to none -n 4 -x OMP_NUM_THREADS -x BRAID_TRACE \
    "$build/examples/pipeline" --schedule $schedule --microbatches 8 --epochs 1 --limit 40960 --batch-size 4096
  "$build/tools/braid_trace_merge" -o "$work/$schedule.merged.json" "$work/$schedule.json"
done
/usr/bin/python3 "$root/tools/render_timeline.py" "$work/1f1b.merged.json" -o "$out/pipeline_1f1b_4ranks.png" \
  --title "1F1B on 4 ranks, M = 8 (examples/pipeline: 784 -> 6 x 256 -> 10 MLP, batch 4096, one CPU thread per rank)"
/usr/bin/python3 "$root/tools/render_timeline.py" "$work/zb.merged.json" -o "$out/pipeline_zb_h1_4ranks.png" \
  --title "ZB-H1 on 4 ranks, M = 8 (examples/pipeline: 784 -> 6 x 256 -> 10 MLP, batch 4096, one CPU thread per rank)"
