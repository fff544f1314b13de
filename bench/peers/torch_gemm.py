"""PyTorch twin of bench/gemm_bench.cpp: float32 GEMM GFLOP/s through torch (the BLAS PyTorch's Linear uses) on
square n x n and on the GEMMs of one training step of the benchmark MLPs, with the same transposes as Braid
(forward addmm(bias, x, W.t()), weight gradient g.t() @ x, input gradient g @ W, none for the first layer).
usage: OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 torch_gemm.py --threads 1"""
import argparse, json, statistics, time
import torch


def step_gemms(dims, batch):
    """The GEMMs of one training step of Linear layers dims at `batch`, as closures, and their FLOP count."""
    fns, flops = [], 0.0
    for l in range(len(dims) - 1):
        i, o = dims[l], dims[l + 1]
        x, W, bias, g = torch.randn(batch, i), torch.randn(o, i), torch.randn(o), torch.randn(batch, o)
        fns.append(lambda x=x, W=W, bias=bias: torch.addmm(bias, x, W.t()))
        fns.append(lambda x=x, g=g: g.t().mm(x))
        flops += 4.0 * batch * i * o
        if l > 0:
            fns.append(lambda W=W, g=g: g.mm(W))
            flops += 2.0 * batch * i * o
    return fns, flops


def time_step_gemms(dims, batch, reps):
    """Median seconds for one pass over the step's GEMMs, and their FLOP count."""
    fns, flops = step_gemms(dims, batch)
    with torch.no_grad():
        for _ in range(3):
            for f in fns: f()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for f in fns: f()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), flops


def time_median(fn, min_s):
    fn(); fn()
    ts, start = [], time.perf_counter()
    while len(ts) < 3 or time.perf_counter() - start < min_s:
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--square", default="1024,2048")
    ap.add_argument("--mlp", default="784,256,128,10@128;784,1024,1024,10@256")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--min-s", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for n in [int(s) for s in args.square.split(",") if s]:
            a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
            t = time_median(lambda: torch.mm(a, b, out=c), args.min_s)
            print(json.dumps(dict(case="square", n=n, threads=args.threads, torch_gflops=round(2 * n ** 3 / t * 1e-9, 2))), flush=True)
    for spec in args.mlp.split(";"):
        d, batch = spec.split("@")
        t, flops = time_step_gemms([int(x) for x in d.split(",")], int(batch), args.reps)
        print(json.dumps(dict(case="train_step", mlp=spec, threads=args.threads, flops_per_step=flops,
                              torch_us=round(t * 1e6, 1), torch_gflops=round(flops / t * 1e-9, 2))), flush=True)
