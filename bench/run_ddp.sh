#!/usr/bin/env bash
# DDP training throughput on CPU: Braid (1 rank; 2 ranks with overlap; 2 ranks without) vs the PyTorch DDP gloo
# peer (/work/shared/peers/torch_ddp.py, 1 and 2 ranks), one thread per rank, runs interleaved, REPS repetitions,
# medians. Prints a Markdown table of global samples/s and scaling efficiency = sps(N) / (N * sps(1)).
#   bench/run_ddp.sh [path/to/braid_ddp_bench]      env: REPS (3), SMALL_STEPS (400), BIG_STEPS (100), WARMUP (10)
set -euo pipefail
BIN=${1:-build/bench/braid_ddp_bench}
REPS=${REPS:-3}; SMALL_STEPS=${SMALL_STEPS:-400}; BIG_STEPS=${BIG_STEPS:-100}; WARMUP=${WARMUP:-10}
PEER=${PEER:-/work/shared/peers/torch_ddp.py}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPI=(mpiexec --allow-run-as-root --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader
     --mca mtl ^ofi --mca osc ^ucx --mca coll ^hcoll -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
port=29600
for rep in $(seq 1 "$REPS"); do
  for cfg in "256,128 128 $SMALL_STEPS" "1024,1024 256 $BIG_STEPS"; do
    set -- $cfg; H=$1; B=$2; S=$3
    args=(--hidden "$H" --local-batch "$B" --steps "$S" --warmup "$WARMUP" --threads 1)
    "$BIN" "${args[@]}" | sed "s/^/braid1 /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" | sed "s/^/braid2o /" >>"$OUT"
    "${MPI[@]}" -n 2 "$BIN" "${args[@]}" --no-overlap | sed "s/^/braid2n /" >>"$OUT"
    if [ "$H" = "256,128" ]; then  # the peer's model is fixed at 784-256-128-10
      for w in 1 2; do
        port=$((port + 1))
        /usr/bin/python3 "$PEER" --world $w --threads 1 --local-batch "$B" --epochs 1 --port $port \
          | sed "s/^/torch$w /" >>"$OUT"
      done
    fi
  done
  echo "repetition $rep/$REPS done" >&2
done
python3 - "$OUT" "$REPS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tag, _, js = line.partition(" ")
    if not js.strip().startswith("{"): continue
    r = json.loads(js)
    model = r.get("model", "784-256-128-10")
    rows.setdefault((tag, model), []).append(r["samples_per_s"])
med = {k: statistics.median(v) for k, v in rows.items()}
label = {"braid1": ("Braid", 1, "-"), "braid2o": ("Braid", 2, "on"), "braid2n": ("Braid", 2, "off"),
         "torch1": ("PyTorch DDP (gloo)", 1, "-"), "torch2": ("PyTorch DDP (gloo)", 2, "on (PyTorch default)")}
base = {"braid1": "braid1", "braid2o": "braid1", "braid2n": "braid1", "torch1": "torch1", "torch2": "torch1"}
print(f"{sys.argv[2]} repetitions, medians; 1 thread per rank; global samples/s\n")
print("| model (per-rank batch) | impl | ranks | overlap | samples/s (median) | runs | scaling efficiency |")
print("|---|---|---|---|---:|---|---:|")
for model, b in (("784-256-128-10", 128), ("784-1024-1024-10", 256)):
    for tag in ("braid1", "braid2o", "braid2n", "torch1", "torch2"):
        if (tag, model) not in med: continue
        impl, n, ov = label[tag]
        s = med[(tag, model)]; s1 = med.get((base[tag], model))
        eff = f"{s / (n * s1):.2f}" if s1 else "n/a"
        runs = ", ".join(f"{x:.0f}" for x in rows[(tag, model)])
        print(f"| {model} ({b}) | {impl} | {n} | {ov} | {s:.0f} | {runs} | {eff} |")
PY
