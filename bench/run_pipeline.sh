#!/usr/bin/env bash
# Pipeline step time per schedule (bench/pipeline_bench.cpp) on 2 and 4 ranks of 1 thread each (4 oversubscribed on
# a 2-core machine), against dist::simulate with the stage costs each run measured, once with a core per rank and once
# on the machine's cores (the bench's --cores, default nproc; set it through CONFIG). Repetitions alternate the rank
# counts (2, 4, then 4, 2); prints a Markdown table of medians over the repetitions, then the measured stage costs.
#   bench/run_pipeline.sh [BUILD_DIR]   env: REPS (3), STEPS (20), WARMUP (3), RANKS ("2 4"), CONFIG (extra flags,
#                                       e.g. "--microbatches 8 --schedules 1f1b,zb --width 512 --layers 8")
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/bench/braid_pipeline_bench
REPS=${REPS:-3}; STEPS=${STEPS:-20}; WARMUP=${WARMUP:-3}; RANKS=${RANKS:-"2 4"}; CONFIG=${CONFIG:-}
[ -x "$BIN" ] || { echo "run_pipeline.sh: $BIN not built (cmake --build $BUILD --target braid_pipeline_bench)" >&2; exit 2; }
ROOT=""; [ "$(id -u)" = 0 ] && ROOT=--allow-run-as-root
MPI=(mpiexec $ROOT --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader --mca mtl ^ofi --mca osc ^ucx
     --mca coll ^hcoll -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
order=($RANKS)
for rep in $(seq 1 "$REPS"); do
  for p in "${order[@]}"; do
    "${MPI[@]}" -n "$p" "$BIN" --threads 1 --steps "$STEPS" --warmup "$WARMUP" $CONFIG >>"$OUT"
  done
  order=($(printf '%s\n' "${order[@]}" | tac))
  echo "repetition $rep/$REPS done" >&2
done
python3 - "$OUT" "$REPS" "$(nproc)" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "skipped" not in r:
            runs.setdefault((r["schedule"], r["p"], r["v"], r["M"]), []).append(r)
cores = int(sys.argv[3])
sim_cores = sorted({r["cores"] for rs in runs.values() for r in rs})
sc = "/".join(str(c) for c in sim_cores)
med = lambda rs, k: statistics.median(r[k] for r in rs)
order = {"gpipe": 0, "1f1b": 1, "interleaved": 2, "zb": 3}
keys = sorted(runs, key=lambda k: (k[1], k[3], order.get(k[0], 9)))
c = next(iter(runs.values()))[0]
print(f"Stages: {c['layers_per_rank']} x Linear({c['width']}, {c['width']})+ReLU per rank (split into v virtual "
      f"stages), micro-batch {c['micro_batch']}, MSE loss; 1 thread per rank on {cores} cores; {c['steps']} timed "
      f"steps per run, {sys.argv[2]} repetitions; medians, times in ms\n")
print(f"| schedule | p | v | M | simulated step | measured step | measured/simulated (runs) "
      f"| simulated on {sc} cores | measured/simulated on {sc} cores (runs) | simulated bubble "
      f"| simulated bubble on {sc} cores | measured bubble | ideal M·v·(F+B) |")
print("|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|")
for k in keys:
    rs = runs[k]
    s, p, v, m = k
    ratios = ", ".join(f"{r['ratio']:.2f}" for r in rs)
    ratios_cores = ", ".join(f"{r['ratio_cores']:.2f}" for r in rs)
    print(f"| {s} | {p} | {v} | {m} | {med(rs, 'sim_step_ms'):.1f} | {med(rs, 'step_ms'):.1f} | "
          f"{med(rs, 'ratio'):.2f} ({ratios}) | {med(rs, 'sim_cores_step_ms'):.1f} | "
          f"{med(rs, 'ratio_cores'):.2f} ({ratios_cores}) | {med(rs, 'sim_bubble'):.3f} | "
          f"{med(rs, 'sim_cores_bubble'):.3f} | {med(rs, 'bubble'):.3f} | {med(rs, 'ideal_ms'):.1f} |")
print("\nStage costs measured (one stage, one micro-batch; medians over the runs):\n")
print("| p | v | F | I | W | B (full) | p2p one activation |")
print("|---:|---:|---:|---:|---:|---:|---:|")
groups = {}
for (s, p, v, m), rs in runs.items():
    groups.setdefault((p, v), []).extend(rs)
for (p, v) in sorted(groups):
    rs = groups[(p, v)]
    print(f"| {p} | {v} | {med(rs, 'f_ms'):.2f} | {med(rs, 'i_ms'):.2f} | {med(rs, 'w_ms'):.2f} | "
          f"{med(rs, 'b_ms'):.2f} | {med(rs, 'p2p_ms'):.3f} |")
PY
