#!/usr/bin/env python3
"""Runs Braid's benchmarks and their PyTorch peers interleaved and prints one Markdown table.

usage: python3 bench/run_all.py [BUILD_DIR=build] [--reps 3] [--epochs 1] [--steps 0] [--threads 1,2]
                                [--log FILE] [--skip mlp,simplenn,gemm] [--max-foreign 0.15] [--retries 4]

Builds nothing: the Braid programs are taken from BUILD_DIR/bench (braid_mlp_bench, braid_simplenn_bench,
braid_gemm_bench, braid_fma_peak). The peers (bench/peers/*.py) run under /usr/bin/python3, the only Python
that imports Debian's PyTorch; this driver itself needs no torch. Every run pins OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS to its thread count. Each repetition runs Braid and PyTorch back to back, alternating
which goes first (A B, B A, ...), and the table quotes medians over repetitions and their ratio.

MLP rows: samples/s of the last timed epoch (the peer's timed region: data shuffled in memory, contiguous
batches, forward + loss + backward + SGD step). The "by CPU time" ratio divides the two processes' CPU seconds
per sample instead, which other jobs on a shared machine disturb much less than wall time (at 2 threads it also
counts OpenMP's spin-waiting). GEMM-in-training rows count 2*M*N*K for the forward, weight-gradient and
input-gradient GEMM of every Linear (none for the first layer's input gradient, which Braid and PyTorch skip)
over the step time. Every JSON line the programs print goes to the log file too.

The machine may be shared: from /proc/stat and the children's CPU time the driver works out how many cores
other jobs kept busy during each run, reruns a run (after a pause) when they took more than --max-foreign of the
cores the run needs, and reports it above the table. A 2-thread run on 2 cores collapses when another job
takes a core (OpenMP barriers wait for a descheduled thread), and it is bimodal as the host moves the two vCPUs
near (~80 ns cache-line round trip) or far (~320 ns) apart: each 2-thread repetition lists that round trip,
measured by braid_core_distance just before it."""
import argparse, json, os, resource, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
TORCH_PY = "/usr/bin/python3"
MLPS = [("small", "256,128", 128, "MLP 784-256-128-10, batch 128"),
        ("large", "1024,1024", 256, "MLP 784-1024-1024-10, batch 256")]

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--epochs", type=int, default=1, help="epochs per MLP run; the last one is reported")
ap.add_argument("--steps", type=int, default=0, help="cap on steps per MLP epoch (0: the whole epoch)")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--log", default=None, help="JSON lines of every run (default BUILD/bench/results.jsonl)")
ap.add_argument("--skip", default="", help="comma list of mlp, simplenn, gemm")
ap.add_argument("--max-foreign", type=float, default=0.3,
                help="rerun a program when other jobs kept busy more than this many of the cores it needs")
ap.add_argument("--retries", type=int, default=4)
ap.add_argument("--pause", type=float, default=10, help="seconds to wait before a retry")
args = ap.parse_args()

bindir = os.path.join(os.path.abspath(args.build), "bench")
for exe in ("braid_mlp_bench", "braid_simplenn_bench", "braid_gemm_bench", "braid_fma_peak"):  # core_distance optional
    if not os.access(os.path.join(bindir, exe), os.X_OK):
        sys.exit(f"{bindir}/{exe} not found: build first (cmake --build {args.build} -j2)")
threads = [int(t) for t in args.threads.split(",")]
skip = set(s for s in args.skip.split(",") if s)
log_path = args.log or os.path.join(bindir, "results.jsonl")
log = open(log_path, "w")
NCPU = os.cpu_count()
FOREIGN = {}  # threads -> cores other jobs used during each kept run


def busy_cpu_s():
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd, nthreads, tag):
    """Runs one program; retries (up to --retries times, after a pause) while other jobs kept more than
    --max-foreign of the cores it needs busy during the run (cores it leaves free may be used), since then its
    timing says little."""
    env = dict(os.environ, OMP_NUM_THREADS=str(nthreads), OPENBLAS_NUM_THREADS=str(nthreads))
    for attempt in range(args.retries + 1):
        t0, b0, c0 = time.time(), busy_cpu_s(), children_cpu_s()
        p = subprocess.run(cmd, env=env, cwd=PEERS, capture_output=True, text=True, timeout=900)
        wall = time.time() - t0
        foreign = max(0.0, (busy_cpu_s() - b0) - (children_cpu_s() - c0)) / wall  # cores used by other jobs
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
        note = f"{tag:<30} {wall:5.1f}s, other jobs used {foreign:4.2f} of {NCPU} cores"
        if foreign <= max(0, NCPU - nthreads) + args.max_foreign or attempt == args.retries:
            break
        print(f"  {note}: retrying", file=sys.stderr, flush=True)
        time.sleep(args.pause)
    out = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            d["_tag"], d["_foreign_cores"] = tag, round(foreign, 3)
            log.write(json.dumps(d) + "\n")
            out.append(d)
    log.flush()
    FOREIGN.setdefault(nthreads, []).append(foreign)
    print(f"  {note}", file=sys.stderr, flush=True)
    return out


def interleaved(pair, reps):
    """pair: {name: fn() -> value}; runs them alternately (A B, B A, ...) and returns {name: [values]}."""
    names = list(pair)
    res = {n: [] for n in names}
    for r in range(reps):
        for n in (names if r % 2 == 0 else names[::-1]):
            res[n].append(pair[n]())
    return res


med = statistics.median
rows = []  # (what, threads, braid, torch, ratio, notes)
fmt = lambda x, d=1: "—" if x is None else f"{x:,.{d}f}"

# ---- machine limits: FMA peak, sgemm alone ----
peak, gemm_b, gemm_t = {}, {}, {}
gemm_reps = max(2, args.reps - 1)
if "gemm" not in skip:
    print("GEMM and FMA peak", file=sys.stderr)
    for t in threads:
        r = interleaved({
            "braid": lambda t=t: run([f"{bindir}/braid_gemm_bench", "--threads", str(t)], t, f"braid gemm {t}T"),
            "torch": lambda t=t: run([TORCH_PY, "torch_gemm.py", "--threads", str(t)], t, f"torch gemm {t}T"),
            "peak": lambda t=t: run([f"{bindir}/braid_fma_peak", str(t)], t, f"fma_peak {t}T"),
        }, gemm_reps)
        gemm_b[t], gemm_t[t], peak[t] = r["braid"], r["torch"], r["peak"]


def core_distance():
    """Round trip (ns) of a cache line between vCPU 0 and 1 right now, or None without braid_core_distance."""
    exe = os.path.join(bindir, "braid_core_distance")
    if not os.access(exe, os.X_OK):
        return None
    p = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])["round_trip_ns"]
    except (ValueError, IndexError, KeyError):
        return None


def cpu_per_sample(epoch_line):
    return epoch_line["cpu_s"] / (epoch_line["samples_per_s"] * epoch_line["epoch_s"])


def gemm_vals(runs, case, key, field, value):
    return [d[field] for rr in runs for d in rr if d.get("case") == case and d.get(key) == value]


def peak_vals(t, width):
    return [d["peak_gflops"] for rr in peak.get(t, []) for d in rr if d.get("width") == width]


def med_best(vals):
    """'median (best)' of a machine-limit measurement: the best run is the one least disturbed by other jobs."""
    return (med(vals), max(vals)) if vals else (None, None)


# ---- MLP training ----
mlp = {}
if "mlp" not in skip:
    print("MLP training on Fashion-MNIST", file=sys.stderr)
    common = ["--epochs", str(args.epochs)] + (["--steps", str(args.steps)] if args.steps else [])
    for name, hidden, batch, label in MLPS:
        for t in threads:
            def braid_run(t=t, hidden=hidden, batch=batch, name=name):
                dist = core_distance() if t > 1 else None
                out = run([f"{bindir}/braid_mlp_bench", "--threads", str(t), "--hidden", hidden, "--batch", str(batch)]
                          + common, t, f"braid mlp {name} {t}T")
                ep = [d for d in out if "epoch" in d and "samples_per_s" in d][-1]
                summ = [d for d in out if d.get("summary")][-1]
                return dict(sps=ep["samples_per_s"], cpu_per_sample=cpu_per_sample(ep),
                            acc=ep["test_acc"], summary=summ, core_ns=dist)

            def torch_run(t=t, hidden=hidden, batch=batch, name=name):
                dist = core_distance() if t > 1 else None
                out = run([TORCH_PY, "torch_mlp.py", "--threads", str(t), "--hidden", hidden, "--batch", str(batch),
                           "--gemm-reps", "30"] + common, t, f"torch mlp {name} {t}T")
                ep = [d for d in out if "epoch" in d and "samples_per_s" in d][-1]
                summ = [d for d in out if d.get("summary")][-1]
                return dict(sps=ep["samples_per_s"], cpu_per_sample=cpu_per_sample(ep),
                            acc=ep["test_acc"], summary=summ, core_ns=dist)

            mlp[(name, t)] = interleaved({"braid": braid_run, "torch": torch_run}, args.reps)

# ---- SimpleNN ----
simple = None
if "simplenn" not in skip:
    print("SimpleNN step", file=sys.stderr)
    simple = interleaved({
        "braid": lambda: run([f"{bindir}/braid_simplenn_bench", "--threads", "1"], 1, "braid simplenn 1T")[-1],
        "torch": lambda: run([TORCH_PY, "torch_simplenn.py", "--threads", "1"], 1, "torch simplenn 1T")[-1],
    }, args.reps)

# ---- the table ----
for name, hidden, batch, label in MLPS:
    for t in threads:
        if (name, t) not in mlp:
            continue
        r = mlp[(name, t)]
        b, p = med(x["sps"] for x in r["braid"]), med(x["sps"] for x in r["torch"])
        cb, cp = med(x["cpu_per_sample"] for x in r["braid"]), med(x["cpu_per_sample"] for x in r["torch"])
        accb, accp = med(x["acc"] for x in r["braid"]), med(x["acc"] for x in r["torch"])
        reps_note = lambda xs: "/".join(fmt(x["sps"], 0) + (f" ({x['core_ns']:.0f} ns)" if x.get("core_ns") else "")
                                        for x in xs)
        rows.append((f"{label}: samples/s (higher is better)", t, fmt(b), fmt(p), f"{b / p:.2f}",
                     f"by CPU time {cp / cb:.2f}; test acc {accb:.3f} vs {accp:.3f}; "
                     f"reps B {reps_note(r['braid'])}, P {reps_note(r['torch'])}"))
if simple:
    b = med(x["step_us_median"] for x in simple["braid"])
    p = med(x["step_us_median"] for x in simple["torch"])
    fb = med(x["fwd_loss_bwd_us"] for x in simple["braid"])
    fp = med(x["fwd_loss_bwd_us"] for x in simple["torch"])
    rows.append(("SimpleNN step (Linear 10→1, batch 64, MSE, SGD): µs, median (lower is better)", 1, fmt(b), fmt(p),
                 f"{b / p:.2f}", f"fwd+loss+bwd {fb:.1f} vs {fp:.1f} µs; cold step "
                 f"{med(x['cold_step_us'] for x in simple['braid']):.1f} vs {med(x['cold_step_us'] for x in simple['torch']):.1f} µs"))
for name, hidden, batch, label in MLPS:
    for t in threads:
        if (name, t) not in mlp:
            continue
        r = mlp[(name, t)]
        fps = r["braid"][-1]["summary"]["gemm_flops_per_sample"]
        b = med(x["sps"] for x in r["braid"]) * fps * 1e-9
        p = med(x["sps"] for x in r["torch"]) * fps * 1e-9
        sb = lambda k: med(x["summary"][k] for x in r["braid"])
        sp = lambda k: med(x["summary"][k] for x in r["torch"])
        notes = [f"step {sb('step_us'):,.0f} vs {sp('step_us'):,.0f} µs",
                 f"the step's GEMMs alone, right after training: Braid {sb('gemm_share_of_step'):.0%} of its step "
                 f"at {sb('gemm_alone_braid_gflops'):.0f} GFLOP/s (raw cblas {sb('gemm_alone_cblas_gflops'):.0f}), "
                 f"PyTorch {sp('gemm_share_of_step'):.0%} at {sp('gemm_alone_gflops'):.0f}"]
        if t in peak:
            notes.append(f"FMA peak {max(peak_vals(t, 'avx2-256'), default=0):.0f} (AVX2) / "
                         f"{max(peak_vals(t, 'avx512-512'), default=0):.0f} (AVX-512)")
        rows.append((f"GEMM GFLOP/s inside training, {label} ({fps / 1e6:.2f} MFLOP/sample)", t, fmt(b), fmt(p),
                     f"{b / p:.2f}", "; ".join(notes)))
for t in threads:
    if t not in gemm_b:
        continue
    cases = [(f"sgemm alone, one step's GEMMs of the {name} MLP: GFLOP/s (braid::ops vs torch)", "train_step", "mlp",
              f"784,{hidden},10@{batch}", "braid_gflops", "torch_gflops", "cblas_gflops") for name, hidden, batch, _ in MLPS]
    cases += [(f"sgemm {n}x{n}x{n}: GFLOP/s (braid::ops::matmul vs torch.mm)", "square", "n", n, "braid_matmul_gflops",
               "torch_gflops", "cblas_gflops") for n in (1024, 2048)]
    for what, case, key, value, fb, ft, fc in cases:
        b, bb = med_best(gemm_vals(gemm_b[t], case, key, fb, value))
        p, pb = med_best(gemm_vals(gemm_t[t], case, key, ft, value))
        c, cb = med_best(gemm_vals(gemm_b[t], case, key, fc, value))
        if b is None or p is None:
            continue
        rows.append((what, t, fmt(b), fmt(p), f"{b / p:.2f}",
                     f"raw cblas_sgemm {c:.1f}; best runs {bb:.1f} / {pb:.1f} / cblas {cb:.1f}"))
    a2, a2b = med_best(peak_vals(t, "avx2-256"))
    a5, a5b = med_best(peak_vals(t, "avx512-512"))
    rows.append(("FMA peak: GFLOP/s, AVX2 / AVX-512 (median; best)", t, "—", "—", "—",
                 f"{a2:.1f} / {a5:.1f}; best {a2b:.1f} / {a5b:.1f}"))

blas = next((d for rr in gemm_b.get(threads[0], []) for d in rr if d.get("case") == "blas"), None)
print(f"\nOpenBLAS kernel: {blas['corename'] if blas else '?'} ({blas['config'] if blas else '?'}); "
      f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
print(f"Braid vs PyTorch {subprocess.run([TORCH_PY, '-c', 'import torch; print(torch.__version__)'], capture_output=True, text=True).stdout.strip()}"
      f", medians of {args.reps} interleaved repetitions (GEMM and FMA peak: {gemm_reps}); log: {log_path}")
for t, f in sorted(FOREIGN.items()):
    print(f"{t}-thread runs: other jobs kept {med(f):.2f} of {NCPU} cores busy in the median run, {max(f):.2f} at most "
          f"(retried above {max(0, NCPU - t) + args.max_foreign:.2f}, up to {args.retries} times)")
print()
print("| benchmark | threads | Braid | PyTorch | Braid/PyTorch | notes |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
