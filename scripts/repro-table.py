#!/usr/bin/env python3
"""Render `allot simulate --json` outputs (one file per trace) as the Markdown tables of
BENCHMARKS.md: ours vs published unallocated GPU % at the report point, per policy."""
import json
import sys

PAPER = ["random", "dotprod", "clustering", "packing", "bestfit", "fgd"]
KUBE = ["least-allocated", "most-allocated"]


def cell(v):
    return "-" if v is None else f"{v['mean']:.2f} ± {v['sd']:.2f}"


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    at = runs[0]["at"]
    print(f"| trace | " + " | ".join(PAPER) + " | in spread |")
    print("|---" * (len(PAPER) + 2) + "|")
    total = ok = 0
    for run in runs:
        by = {p["policy"]: p for p in run["policies"]}
        ours = []
        theirs = []
        hits = 0
        n = 0
        for name in PAPER:
            p = by.get(name)
            if p is None:
                ours.append("-")
                theirs.append("-")
                continue
            mark = {True: "", False: " ✗", None: ""}[p["within_published_spread"]]
            ours.append(cell(p["unallocated_gpu_pct_at"]) + mark)
            theirs.append(cell(p["published_unallocated_gpu_pct_at"]))
            if p["within_published_spread"] is not None:
                n += 1
                hits += p["within_published_spread"]
        total += n
        ok += hits
        print(f"| {run['trace']} (allot) | " + " | ".join(ours) + f" | {hits}/{n} |")
        print(f"| {run['trace']} (published) | " + " | ".join(theirs) + " | |")
    print()
    print(f"{ok} of {total} (trace, policy) pairs within the published spread at {at}% arrived.")
    print()
    print("| trace | " + " | ".join(KUBE) + " | fgd |")
    print("|---" * (len(KUBE) + 2) + "|")
    for run in runs:
        by = {p["policy"]: p for p in run["policies"]}
        print(f"| {run['trace']} | " + " | ".join(cell(by[k]["unallocated_gpu_pct_at"]) if k in by else "-" for k in KUBE + ["fgd"]) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
