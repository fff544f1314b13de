#!/usr/bin/env bash
# DDP training throughput on CPU, one thread per rank: Braid on 1 rank and on 2 ranks (default 25 MiB buckets, one
# per model here; small buckets, 0.25 MiB for the small MLP and 1 MiB for the large, with overlap on and off; and
# "lockstep only", a barrier per step and no gradient exchange, the floor under DDP's scaling) against PyTorch DDP
# with gloo (bench/peers/torch_ddp.py, 1 and 2 ranks), for the two MLPs of bench/run_all.sh. Runs interleaved, REPS repetitions, medians. Prints a Markdown table of
# global samples/s and scaling efficiency = sps(N ranks) / (N * sps(1 rank)) of the same implementation, then the
# efficiency per repetition next to the vCPU distance measured just before it.
#   bench/run_ddp.sh [path/to/braid_ddp_bench]      env: REPS (3), SMALL_STEPS (400), BIG_STEPS (60), WARMUP (10)
set -euo pipefail
BIN=${1:-build/bench/braid_ddp_bench}
REPS=${REPS:-3}; SMALL_STEPS=${SMALL_STEPS:-400}; BIG_STEPS=${BIG_STEPS:-60}; WARMUP=${WARMUP:-10}
PEER=${PEER:-$(dirname "$0")/peers/torch_ddp.py}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPI=(mpiexec --allow-run-as-root --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader
     --mca mtl ^ofi --mca osc ^ucx --mca coll ^hcoll -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
port=29600
DIST=$(dirname "$BIN")/braid_core_distance  # how far apart the two vCPUs are (bimodal on these VMs)
for rep in $(seq 1 "$REPS"); do
  if [ -x "$DIST" ]; then "$DIST" | sed "s/^/$rep distance /" >>"$OUT"; fi
  for cfg in "256,128 128 $SMALL_STEPS 0.25" "1024,1024 256 $BIG_STEPS 1"; do
    set -- $cfg; H=$1; B=$2; S=$3; SMALL_BUCKET=$4
    args=(--hidden "$H" --local-batch "$B" --steps "$S" --warmup "$WARMUP" --threads 1)
    "$BIN" "${args[@]}" | sed "s/^/$rep braid1 /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" | sed "s/^/$rep braid2 /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" --bucket-mb "$SMALL_BUCKET" | sed "s/^/$rep braid2o1 /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" --bucket-mb "$SMALL_BUCKET" --no-overlap | sed "s/^/$rep braid2n1 /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" --lockstep-only | sed "s/^/$rep braid2L /" >>"$OUT"
    for w in 1 2; do
      port=$((port + 1))
      /usr/bin/python3 "$PEER" --world $w --threads 1 --hidden "$H" --local-batch "$B" --epochs 1 --steps "$S" \
        --no-eval --port $port | sed "s/^/$rep torch$w /" >>"$OUT"
    done
  done
  echo "repetition $rep/$REPS done" >&2
done
python3 - "$OUT" "$REPS" <<'PY'
import json, statistics, sys
rows, buckets, dist, per_rep = {}, {}, {}, {}
for line in open(sys.argv[1]):
    rep, tag, js = (line.split(" ", 2) + ["", ""])[:3]
    if not js.strip().startswith("{"): continue
    r = json.loads(js)
    if tag == "distance":
        dist[rep] = r["round_trip_ns"]; continue
    rows.setdefault((tag, r["model"]), []).append(r["samples_per_s"])
    per_rep[(rep, tag, r["model"])] = r["samples_per_s"]
    if "buckets" in r: buckets[(tag, r["model"])] = (r["bucket_mb"], r["buckets"])
med = {k: statistics.median(v) for k, v in rows.items()}
label = {"braid1": ("Braid", 1, "-", "-"), "braid2": ("Braid", 2, "", "on"),
         "braid2o1": ("Braid", 2, "", "on"), "braid2n1": ("Braid", 2, "", "off"),
         "braid2L": ("Braid, lockstep only (a barrier per step, no gradient exchange)", 2, "-", "-"),
         "torch1": ("PyTorch DDP (gloo)", 1, "-", "-"), "torch2": ("PyTorch DDP (gloo)", 2, "25 MiB", "on")}
base = {t: ("torch1" if t.startswith("torch") else "braid1") for t in label}
models = (("784-256-128-10", 128), ("784-1024-1024-10", 256))
print(f"{sys.argv[2]} repetitions, medians; 1 thread per rank; global samples/s\n")
print("| model (per-rank batch) | impl | ranks | bucket cap (buckets) | overlap | samples/s (median) | runs | scaling efficiency |")
print("|---|---|---|---|---|---:|---|---:|")
for model, b in models:
    for tag in label:
        if (tag, model) not in med: continue
        impl, n, cap, ov = label[tag]
        if (tag, model) in buckets and n > 1 and tag != "braid2L": cap = "%g MiB (%d)" % buckets[(tag, model)]
        s = med[(tag, model)]; s1 = med.get((base[tag], model))
        eff = f"{s / (n * s1):.2f}" if s1 else "n/a"
        runs = ", ".join(f"{x:.0f}" for x in rows[(tag, model)])
        print(f"| {model} ({b}) | {impl} | {n} | {cap} | {ov} | {s:.0f} | {runs} | {eff} |")
# Scaling per repetition, next to how far apart the two vCPUs were just before it.
reps = sorted({k[0] for k in per_rep}, key=int)
print("\nPer repetition: vCPU 0-1 cache-line round trip, and Braid's scaling efficiency (25 MiB buckets; lockstep only)\n")
print("| repetition | round trip ns | " + " | ".join(f"{m} DDP | {m} lockstep" for m, _ in models) + " |")
print("|---|---:|" + "---:|---:|" * len(models))
for rep in reps:
    cells = []
    for m, _ in models:
        one = per_rep.get((rep, "braid1", m))
        for tag in ("braid2", "braid2L"):
            two = per_rep.get((rep, tag, m))
            cells.append(f"{two / (2 * one):.2f}" if one and two else "n/a")
    d = dist.get(rep)
    print(f"| {rep} | {'n/a' if d is None else f'{d:.0f}'} | " + " | ".join(cells) + " |")
PY
