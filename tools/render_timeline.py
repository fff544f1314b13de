#!/usr/bin/python3
"""Draws one training step of a merged Braid trace (braid_trace_merge's output) as a pipeline timeline: one row
per rank, each F / I / W / B box coloured by kind with its micro-batch number inside (and its stage, when a rank
holds several), waits hatched grey, idle time white.

    tools/render_timeline.py merged.json -o timeline.png [--step K|fastest] [--title TEXT]

A step starts where rank 0 starts the forward of micro-batch 0 on stage 0; --step picks which one: an index, or by
default the fastest step after the first (on a loaded machine, the one least disturbed by ranks waiting for a core).
Needs matplotlib (Debian: python3-matplotlib); the build and the tests do not use this script.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

COLOURS = {"F": "#4C78A8", "B": "#F58518", "I": "#E45756", "W": "#54A24B"}
LABELS = {"F": "F: forward", "B": "B: full backward", "I": "I: backward for the input", "W": "W: backward for the weights"}


def load(path):
    with open(path) as f:
        doc = json.load(f)
    compute, waits = [], []
    for e in doc.get("traceEvents", []):
        if e.get("ph") != "X" or e.get("cat") != "compute":
            continue
        (waits if e["name"].startswith("wait") else compute).append(e)
    if not compute:
        sys.exit(f"render_timeline: {path} holds no compute events (was it recorded from a pipeline run?)")
    return compute, waits


def step_windows(compute):
    starts = sorted(e["ts"] for e in compute
                    if e["pid"] == 0 and e["args"].get("op") == "F" and e["args"].get("stage") == 0
                    and e["args"].get("microbatch") == 0)
    if not starts:
        sys.exit("render_timeline: rank 0 has no 'F s0 mb0' event to find the steps by")
    last = max(e["ts"] + e["dur"] for e in compute)
    return list(zip(starts, starts[1:] + [last]))


def step_span(compute, window):
    begin, end = window
    inside = [e["ts"] + e["dur"] for e in compute if begin <= e["ts"] < end]
    return max(inside) - begin


def pick_step(compute, step):
    windows = step_windows(compute)
    if step == "fastest":
        # On a loaded machine some steps are stretched by ranks waiting for a core; the fastest is the least
        # disturbed. The first step is left out (it also checks the stages and exchanges shapes).
        candidates = windows[1:] or windows
        return min(candidates, key=lambda w: step_span(compute, w))
    try:
        return windows[int(step)]
    except (IndexError, ValueError):
        sys.exit(f"render_timeline: --step {step}, but the trace has {len(windows)} steps")


def draw(compute, waits, begin, end, title, output):
    inside = [e for e in compute if begin <= e["ts"] < end]
    ranks = sorted({e["pid"] for e in compute})
    stages_of = {r: sorted({e["args"]["stage"] for e in compute if e["pid"] == r}) for r in ranks}
    finish = max(e["ts"] + e["dur"] for e in inside)
    span_ms = (finish - begin) / 1e3
    fig, ax = plt.subplots(figsize=(14, 0.75 * len(ranks) + 1.6))
    for e in inside:
        row = ranks.index(e["pid"])
        x, w = (e["ts"] - begin) / 1e3, e["dur"] / 1e3
        op = e["args"]["op"]
        ax.add_patch(Rectangle((x, row - 0.4), w, 0.8, facecolor=COLOURS.get(op, "#999999"), edgecolor="white", lw=0.6))
        label = str(e["args"]["microbatch"])
        if len(stages_of[e["pid"]]) > 1:
            label += f"\ns{e['args']['stage']}"
        if w > span_ms / 160:
            ax.text(x + w / 2, row, label, ha="center", va="center", fontsize=7, color="white")
    for e in waits:
        if e["pid"] in ranks and begin <= e["ts"] < finish:
            row = ranks.index(e["pid"])
            ax.add_patch(Rectangle(((e["ts"] - begin) / 1e3, row - 0.25), e["dur"] / 1e3, 0.5, facecolor="#dddddd",
                                   edgecolor="#aaaaaa", hatch="////", lw=0.3))
    ax.set_xlim(0, span_ms)
    ax.set_ylim(len(ranks) - 0.5, -0.5)
    ax.set_yticks(range(len(ranks)), [f"rank {r}" for r in ranks])
    ax.set_xlabel("time in the step (ms)")
    kinds = sorted({e["args"]["op"] for e in inside}, key="FIBW".index)
    handles = [Patch(facecolor=COLOURS[k], label=LABELS[k]) for k in kinds]
    handles.append(Patch(facecolor="#dddddd", edgecolor="#aaaaaa", hatch="////", label="waiting for a receive"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.32 if len(ranks) < 4 else -0.2), ncol=5,
              frameon=False, fontsize=8)
    ax.set_title(title or "pipeline timeline", fontsize=10)
    fig.tight_layout()
    fig.savefig(output, dpi=130)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a merged trace (braid_trace_merge -o merged.json trace.json)")
    parser.add_argument("-o", "--output", required=True, help="the PNG to write")
    parser.add_argument("--step", default="fastest",
                        help="which step to draw: an index (0 is the first, -1 the last) or 'fastest' (the default)")
    parser.add_argument("--title", default="", help="the picture's title")
    args = parser.parse_args()
    compute, waits = load(args.trace)
    begin, end = pick_step(compute, args.step)
    draw(compute, waits, begin, end, args.title, args.output)


if __name__ == "__main__":
    main()
