"""PyTorch DistributedDataParallel CPU peer: an MLP 784-h1-h2-10 on Fashion-MNIST, gloo backend.
usage: /usr/bin/python3 torch_ddp.py --world 2 --hidden 256,128 --local-batch 128 --epochs 1 [--threads 1] [--steps N]
Copied from /work/shared/peers/torch_ddp.py for bench/; the only changes: --hidden picks the model (the shared
peer's is fixed at 784-256-128-10), --steps caps the steps per epoch (0 = all), --no-eval skips the test-set
accuracy, and the JSON line names the model. Each rank: torch.set_num_threads(threads), takes its contiguous
local-batch slice of each global batch (global permutation shared via a common seed); the final partial global
batch is dropped. Timed region per epoch = barrier ... all steps ... barrier; throughput = global samples / the
slowest rank's time. Rank 0 prints JSON."""
import argparse, json, os, time
import torch, torch.nn as nn, torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP


def worker(rank, args):
    torch.set_num_threads(args.threads)
    dist.init_process_group(args.backend, init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=args.world)
    from fmnist import load
    xtr, ytr, xte, yte = load()
    torch.manual_seed(0)
    h1, h2 = (int(h) for h in args.hidden.split(","))
    model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))
    model = DDP(model) if not args.no_ddp else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    B, W = args.local_batch, args.world
    GB = B * W
    steps = xtr.shape[0] // GB
    if args.steps:
        steps = min(steps, args.steps)
    for ep in range(1, args.epochs + 1):
        perm = torch.randperm(xtr.shape[0], generator=g)[: steps * GB].view(steps, W, B)[:, rank, :].reshape(-1)
        X, Y = xtr[perm].contiguous(), ytr[perm].contiguous()
        dist.barrier()
        t0 = time.perf_counter()
        for s in range(steps):
            xb, yb = X[s * B:(s + 1) * B], Y[s * B:(s + 1) * B]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xb), yb)
            loss.backward()
            opt.step()
        dist.barrier()
        dt = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
        dist.all_reduce(dt, op=dist.ReduceOp.MAX)
        if rank == 0:
            m = model.module if hasattr(model, "module") else model
            acc = None
            if not args.no_eval:
                with torch.no_grad():
                    acc = round((m(xte).argmax(1) == yte).float().mean().item(), 4)
            r = dict(epoch=ep, impl="torch", model=f"784-{h1}-{h2}-10", backend=args.backend, world=W,
                     threads=args.threads, local_batch=B, global_batch=GB, steps=steps, epoch_s=round(dt.item(), 4),
                     samples_per_s=round(steps * GB / dt.item(), 1), step_ms=round(dt.item() / steps * 1e3, 3),
                     test_acc=acc)
            print(json.dumps(r), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--backend", default="gloo")
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--local-batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--port", type=int, default=29511)
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    mp.spawn(worker, args=(args,), nprocs=args.world, join=True)
