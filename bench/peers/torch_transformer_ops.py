#!/usr/bin/python3
"""The PyTorch 1.13 peer of braid_transformer_ops_bench: forward + backward of nanoGPT's attention (q @ k^T, scale,
masked_fill(-inf) with a causal mask, softmax, @ v; PyTorch 1.13 has no public scaled_dot_product_attention) and
of F.layer_norm with affine parameters, float32, one backward per forward with a fixed output gradient. Prints one
JSON line: the best mean milliseconds per call over three rounds, after a warm-up.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/peers/torch_transformer_ops.py --threads 1 [--reps 50]
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def best_ms(f, reps):
    for _ in range(5):
        f()
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--cols", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    b, h, t, d = a.batch, a.heads, a.seq, a.head_dim
    q, k, v = (torch.randn(b, h, t, d, requires_grad=True) for _ in range(3))
    go = torch.randn(b, h, t, d)
    mask = torch.tril(torch.ones(t, t)).view(1, 1, t, t)

    def sdpa():
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        att = att.masked_fill(mask == 0, float("-inf"))
        (F.softmax(att, dim=-1) @ v).backward(go)

    x = torch.randn(a.rows, a.cols, requires_grad=True)
    w = torch.randn(a.cols, requires_grad=True)
    bias = torch.randn(a.cols, requires_grad=True)
    gy = torch.randn(a.rows, a.cols)

    def ln():
        F.layer_norm(x, (a.cols,), w, bias).backward(gy)

    print(json.dumps({"impl": "torch", "threads": a.threads, "sdpa_ms": round(best_ms(sdpa, a.reps), 4),
                      "layer_norm_ms": round(best_ms(ln, a.reps * 4), 4)}))


if __name__ == "__main__":
    main()
