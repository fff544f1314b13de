#!/usr/bin/env python3
"""Splits a `perf record --call-graph dwarf` profile of braid_mlp_bench into training phases and leaf costs.

usage: perf record -e cpu-clock -F 4000 --call-graph dwarf,32768 -o mlp.data \\
           BUILD/bench/braid_mlp_bench --threads 1 --epochs 3 --gemm-reps 0
       perf script -i mlp.data -F tid,ip,sym | python3 bench/perf_phases.py

Each sample is charged to the outermost phase frame on its stack (forward, loss, backward, optimizer step,
zero_grad, or setup/eval outside the timed loop) and to a leaf category (GEMM inside OpenBLAS, the SGD update
kernel, page faults and other kernel time, malloc/free, element-wise kernels, ...). Prints the phase x leaf
matrix as percentages of the samples inside the timed training loop."""
import collections, re, sys

PHASES = [  # (phase, substring of a frame); the outermost match wins
    ("eval", "main::{lambda()#1}"),
    ("setup", "read_idx"),
    ("setup", "index_select"),
    ("setup", "randperm"),
    ("setup", "mlp_gemms"),
    ("setup", "time_gemms"),
    ("zero_grad", "Optimizer::zero_grad"),
    ("forward", "SequentialImpl::forward"),
    ("loss", "cross_entropy"),
    ("backward", "Tensor::backward"),
    ("step", "SGD::step"),
]
LEAVES = [  # (category, regex on the leaf-most frame or any frame for the '*' ones)
    ("GEMM (OpenBLAS)", r"sgemm_|cblas_sgemm|gemm_thread|blas_thread"),
    ("SGD update kernel", r"sgd_update"),
    ("page faults / kernel", r"^\[k\]|exc_page_fault|clear_page|do_anonymous_page"),
    ("malloc/free/munmap", r"malloc|_int_free|free\b|munmap|mmap|aligned_alloc|cfree|sysmalloc|systrim"),
    ("memcpy/memset", r"memcpy|memmove|memset"),
    ("element-wise/reduce kernels", r"braid::kernels::cpu::"),
    ("OpenMP runtime", r"GOMP_|gomp_|omp_|libgomp|^\[unknown\]"),
    ("shared_ptr/refcount", r"_Sp_counted|shared_ptr|_M_release"),
]


def samples(stream):
    """Stacks of symbol names, leaf first, from `perf script -F tid,ip,sym` (a header line, then one frame per
    line: address and symbol, then a blank line)."""
    cur = []
    for line in stream:
        parts = line.split(None, 1)
        if not parts:
            if cur:
                yield cur
            cur = []
            continue
        try:
            int(parts[0], 16)
            is_frame = len(parts) == 2
        except ValueError:
            is_frame = False
        if not is_frame:  # a sample header
            if cur:
                yield cur
            cur = []
            continue
        sym = parts[1].strip()
        cur.append(("[k] " + sym) if parts[0].startswith("ffffffff") else sym)
    if cur:
        yield cur


def main():
    table = collections.defaultdict(collections.Counter)
    for stack in samples(sys.stdin):  # stack[0] is the leaf
        phase = "other"
        for sym in reversed(stack):
            hit = next((p for p, pat in PHASES if pat in sym), None)
            if hit:
                phase = hit
                break
        leaf = "other"
        for cat, pat in LEAVES:
            if any(re.search(pat, s) for s in stack[:1]) or (cat.startswith("GEMM") and any(re.search(pat, s) for s in stack)):
                leaf = cat
                break
        table[phase][leaf] += 1
    timed = ["zero_grad", "forward", "loss", "backward", "step"]
    n_timed = sum(sum(table[p].values()) for p in timed)
    n_all = sum(sum(c.values()) for c in table.values())
    cats = [c for c, _ in LEAVES] + ["other"]
    print(f"samples: {n_all}, inside the timed loop: {n_timed} ({n_timed / max(n_all, 1):.0%}); "
          "cells are % of the timed-loop samples\n")
    print("| phase | total | " + " | ".join(cats) + " |")
    print("|---|---|" + "---|" * len(cats))
    for p in timed:
        c = table[p]
        tot = sum(c.values())
        print(f"| {p} | {100 * tot / max(n_timed, 1):.1f} | " +
              " | ".join(f"{100 * c[k] / max(n_timed, 1):.1f}" for k in cats) + " |")
    col = collections.Counter()
    for p in timed:
        col.update(table[p])
    print("| **all timed** | 100 | " + " | ".join(f"{100 * col[k] / max(n_timed, 1):.1f}" for k in cats) + " |")
    other = {p: sum(table[p].values()) for p in table if p not in timed}
    print("\noutside the timed loop (samples):", dict(other))
    if table["other"]:
        n = sum(table["other"].values())
        print("'other' (mostly OpenMP/OpenBLAS worker threads, whose stacks do not reach main), by leaf: " +
              ", ".join(f"{k} {100 * v / n:.0f}%" for k, v in table["other"].most_common()))


if __name__ == "__main__":
    main()
