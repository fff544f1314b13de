"""PyTorch twin of bench/gpu_bench.cpp on a CUDA device: (c) MLP training samples/s on random data (Linear+ReLU,
cross-entropy, SGD lr 0.01 momentum 0.9; 784-256-128-10 at batch 128 and 784-1024-1024-10 at batch 256, a pool of
16 batches already on the device), and, with --matmul, (a)'s square FP32 GEMMs through torch.matmul.
TF32 is switched off, as in Braid (cuBLAS's default math mode), so both run true FP32 GEMMs.
Timing as gpu_bench: warm-up, then a synchronised host clock around the timed steps; no .item() inside the loop.
Needs a CUDA build of PyTorch on the same card as gpu_bench (Debian's python3-torch is CPU-only).
usage: python3 torch_gpu_mlp.py [--device 0] [--steps 300] [--warmup 30] [--matmul] [--sizes 1024,4096,8192]"""
import argparse, json, statistics, time
import torch, torch.nn as nn

ap = argparse.ArgumentParser()
ap.add_argument("--device", type=int, default=0)
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--warmup", type=int, default=30)
ap.add_argument("--matmul", action="store_true")
ap.add_argument("--sizes", default="1024,4096,8192")
args = ap.parse_args()
if not torch.cuda.is_available():
    print("no CUDA device (or a CPU-only build of PyTorch: torch %s)" % torch.__version__)
    raise SystemExit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda", args.device)
print("# torch %s on %s" % (torch.__version__, torch.cuda.get_device_name(dev)))


def seconds_per_call(fn, warmup=3):
    """As gpu_bench: median of 5 synchronised batches, each at least 25 ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize(dev)
    reps = min(max(int(0.025 / max(time.perf_counter() - t0, 1e-7)), 2), 20000)
    per = []
    for _ in range(5):
        s = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize(dev)
        per.append((time.perf_counter() - s) / reps)
    return statistics.median(per)


if args.matmul:
    print("\n| case | torch TFLOP/s |\n|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        t = seconds_per_call(lambda: torch.matmul(a, b))
        tf = 2.0 * n ** 3 / t * 1e-12
        print("| square %d | %.2f |" % (n, tf))
        print(json.dumps(dict(bench="gpu_gemm", impl="torch", case="square %d" % n, us=round(t * 1e6, 2),
                              tflops=round(tf, 3))))

print("\n| model | batch | steps | ms / step | samples/s | last loss |\n|---|---|---|---|---|---|")
for dims, batch in [([784, 256, 128, 10], 128), ([784, 1024, 1024, 10], 256)]:
    torch.manual_seed(0)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator(device="cpu").manual_seed(1)
    xs = [torch.randn(batch, dims[0], generator=g).to(dev) for _ in range(16)]
    ys = [torch.randint(0, dims[-1], (batch,), generator=g).to(dev) for _ in range(16)]

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xs[i % 16]), ys[i % 16])
        loss.backward()
        opt.step()
        return loss

    for i in range(args.warmup):
        step(i)
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    torch.cuda.synchronize(dev)
    dt = time.perf_counter() - t0
    name = "-".join(str(d) for d in dims)
    sps = args.steps * batch / dt
    print("| %s | %d | %d | %.3f | %.0f | %.4f |" % (name, batch, args.steps, dt / args.steps * 1e3, sps, loss.item()))
    print(json.dumps(dict(bench="gpu_mlp", impl="torch", model=name, batch=batch, steps=args.steps,
                          step_ms=round(dt / args.steps * 1e3, 4), samples_per_s=round(sps, 1),
                          torch=torch.__version__)), flush=True)
