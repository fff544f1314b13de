"""PyTorch CPU MLP training peer on Fashion-MNIST.
usage: python3 torch_mlp.py --threads 1 --hidden 256,128 --batch 128 --epochs 5 [--seed 0] [--steps N]
Timed region per epoch = forward+loss+backward+optimizer step over all batches (data pre-shuffled in memory,
batches are contiguous slices). Prints one JSON line per epoch and a final summary line.
Copied from /work/shared/peers/torch_mlp.py for bench/; the only changes: --steps caps the batches per epoch
(0 = all), each epoch line adds the timed region's process CPU time (cpu_s) and step count, which
bench/run_all.py uses as a contention-robust second measure on the shared machine, and --gemm-reps N (after
training, untimed) times the step's GEMMs alone as bench/mlp_bench.cpp does, for the GEMM share of the step."""
import argparse, json, time
import torch, torch.nn as nn
from fmnist import load

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--hidden", default="256,128")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--lr", type=float, default=0.1)
ap.add_argument("--steps", type=int, default=0)
ap.add_argument("--gemm-reps", type=int, default=0)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
xtr, ytr, xte, yte = load()
dims = [784] + [int(h) for h in args.hidden.split(",")] + [10]
layers = []
for i in range(len(dims) - 1):
    layers.append(nn.Linear(dims[i], dims[i + 1]))
    if i < len(dims) - 2:
        layers.append(nn.ReLU())
model = nn.Sequential(*layers)
opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
lossf = nn.CrossEntropyLoss()

def evaluate():
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    model.train()
    return acc

g = torch.Generator().manual_seed(args.seed)
res = []
for ep in range(1, args.epochs + 1):
    perm = torch.randperm(xtr.shape[0], generator=g)
    X, Y = xtr[perm].contiguous(), ytr[perm].contiguous()
    n = X.shape[0]
    samples, steps = 0, 0
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, n, args.batch):
        if args.steps and steps >= args.steps:
            break
        xb, yb = X[i:i + args.batch], Y[i:i + args.batch]
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        samples += xb.shape[0]
        steps += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = evaluate()
    r = dict(epoch=ep, threads=args.threads, hidden=args.hidden, batch=args.batch, epoch_s=round(dt, 4),
             samples_per_s=round(samples / dt, 1), steps=steps, cpu_s=round(cpu, 4), last_loss=round(loss.item(), 4), test_acc=round(acc, 4))
    res.append(r)
    print(json.dumps(r), flush=True)
summary = dict(summary=True, threads=args.threads, hidden=args.hidden, batch=args.batch,
               sps=[r["samples_per_s"] for r in res], acc=[r["test_acc"] for r in res],
               torch=torch.__version__, num_threads=torch.get_num_threads())
if args.gemm_reps > 0:
    from torch_gemm import time_step_gemms
    t, flops = time_step_gemms(dims, args.batch, args.gemm_reps)
    step_s = args.batch / res[-1]["samples_per_s"]
    summary.update(gemm_flops_per_sample=flops / args.batch, gemm_alone_us=round(t * 1e6, 1),
                   gemm_alone_gflops=round(flops / t * 1e-9, 2), step_us=round(step_s * 1e6, 1),
                   gemm_share_of_step=round(t / step_s, 3))
print(json.dumps(summary), flush=True)
