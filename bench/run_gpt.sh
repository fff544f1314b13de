#!/usr/bin/env bash
# GPT training throughput: Braid (bench/gpt_bench.cpp) against its PyTorch peer (bench/peers/gpt_torch.py, the
# identical model, optimizer, batch, sequence length and threads; Debian's PyTorch 1.13 under /usr/bin/python3:
# apt-get install -y python3-torch), interleaved A B A B with the order swapped every repetition, at 1 and 2 threads
# (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS pinned to the thread count); then Braid tensor-parallel over 2 ranks of
# 1 thread each (mpiexec -n 2, without and with sequence parallelism) against Braid as 1 process with 2 threads.
# Prints a Markdown table of medians, ratios, and the bytes communicated per step at TP=2.
#   bench/run_gpt.sh [BUILD_DIR]     env: REPS (3), STEPS (30), WARMUP (5), CONFIG (extra flags for both, e.g.
#                                    "--n-layer 6 --n-embd 192 --n-head 6 --block-size 128 --batch 8")
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/bench/braid_gpt_bench
PEER=${PEER:-$(dirname "$0")/peers/gpt_torch.py}
REPS=${REPS:-3}; STEPS=${STEPS:-30}; WARMUP=${WARMUP:-5}; CONFIG=${CONFIG:-}
[ -x "$BIN" ] || { echo "run_gpt.sh: $BIN not built (cmake --build $BUILD --target braid_gpt_bench)" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "run_gpt.sh: /usr/bin/python3 cannot import torch (apt-get install -y python3-torch)" >&2; exit 2; }
ROOT=""; [ "$(id -u)" = 0 ] && ROOT=--allow-run-as-root
MPI=(mpiexec $ROOT --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader --mca mtl ^ofi --mca osc ^ucx
     --mca coll ^hcoll -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
common=(--steps "$STEPS" --warmup-steps "$WARMUP" $CONFIG)
braid() { OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 "$BIN" --threads "$1" "${common[@]}" | sed "s/^/$rep braid$1 /" >>"$OUT"; }
torch() { OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 /usr/bin/python3 "$PEER" --threads "$1" "${common[@]}" |
            sed "s/^/$rep torch$1 /" >>"$OUT"; }
for rep in $(seq 1 "$REPS"); do
  for t in 1 2; do
    if [ $((rep % 2)) = 1 ]; then braid $t; torch $t; else torch $t; braid $t; fi
  done
  "${MPI[@]}" -n 2 "$BIN" --threads 1 "${common[@]}" | sed "s/^/$rep tp2 /" >>"$OUT"
  "${MPI[@]}" -n 2 "$BIN" --threads 1 --sequence-parallel 1 "${common[@]}" | sed "s/^/$rep tp2sp /" >>"$OUT"
  echo "repetition $rep/$REPS done" >&2
done
python3 - "$OUT" "$REPS" <<'PY'
import json, statistics, sys
rows, cfg = {}, {}
for line in open(sys.argv[1]):
    rep, tag, js = (line.split(" ", 2) + ["", ""])[:3]
    if not js.strip().startswith("{"): continue
    r = json.loads(js)
    rows.setdefault(tag, []).append(r["tokens_per_s"])
    cfg[tag] = r
med = {k: statistics.median(v) for k, v in rows.items()}
c = cfg.get("braid1") or next(iter(cfg.values()))
print(f"GPT {c['n_layer']} layers, {c['n_head']} heads, width {c['n_embd']}, block {c['block_size']}, batch "
      f"{c['batch']}, {c['params']} parameters; AdamW + clipping; {c['steps']} timed steps; "
      f"{sys.argv[2]} repetitions, medians of tokens/s\n")
print("| run | layout | tokens/s (median) | runs | ratio |")
print("|---|---|---:|---|---|")
def row(tag, name, layout, base, what):
    if tag not in med: return
    ratio = f"{med[tag] / med[base]:.2f}x {what}" if base in med else "n/a"
    print(f"| {name} | {layout} | {med[tag]:.0f} | {', '.join(f'{x:.0f}' for x in rows[tag])} | {ratio} |")
for t in (1, 2):
    row(f"torch{t}", "PyTorch", f"1 process x {t} thread(s)", f"torch{t}", "")
    row(f"braid{t}", "Braid", f"1 process x {t} thread(s)", f"torch{t}", "PyTorch's")
row("tp2", "Braid TP=2", "2 ranks x 1 thread", "braid2", "Braid 1 x 2 threads")
row("tp2sp", "Braid TP=2, sequence parallel", "2 ranks x 1 thread", "braid2", "Braid 1 x 2 threads")
b = cfg.get("tp2", {}).get("tp_bytes_per_step")
if b:
    print(f"\nTP=2 communicates {b / 2**20:.2f} MiB of collective payload per step ({b:.0f} bytes): per block two "
          "[B, T, C] float32 all-reduces forward and two backward, the embedding's forward and the tied head's "
          "backward all-reduce, the vocabulary-parallel cross-entropy's three [B*T] all-reduces and the clipping "
          "norm; a 2-rank ring moves each payload once out of and once into every rank. With sequence parallelism "
          "each all-reduce is an all-gather plus a reduce-scatter of the same bytes.")
PY
