#!/usr/bin/env python3
"""Render `allot simulate --out DIR` runs (one DIR per trace, policies fgd, learned and
others) as BENCHMARKS.md's learned-policy table: mean unallocated GPU % at 100 % arrived per
policy, the per-seed paired difference learned - fgd, and a two-sided sign test over every
(trace, seed) pair."""
import csv
import math
import statistics
import sys


def load(d):
    rows = list(csv.DictReader(open(f"{d}/runs.csv")))
    by = {}
    for r in rows:
        by.setdefault(r["policy"], {})[int(r["seed"])] = float(r["unallocated_gpu_pct_at_100"])
    return rows[0]["trace"], by


def sign_test(wins, losses):
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def main(dirs):
    others = ["bestfit"]
    print("| trace | learned | fgd | " + " | ".join(others) + " | learned - fgd (paired, mean ± sd) | learned better / worse / tied seeds |")
    print("|---" * (5 + len(others)) + "|")
    wins = losses = 0
    for d in dirs:
        trace, by = load(d)
        seeds = sorted(by["fgd"])
        diff = [by["learned"][s] - by["fgd"][s] for s in seeds]
        w = sum(x < -1e-9 for x in diff)
        l = sum(x > 1e-9 for x in diff)
        wins += w
        losses += l
        cell = lambda p: f"{statistics.mean(by[p].values()):.2f}" if p in by else "-"
        sd = statistics.stdev(diff) if len(diff) > 1 else 0.0
        print(f"| {trace} | {cell('learned')} | {cell('fgd')} | " + " | ".join(cell(p) for p in others)
              + f" | {statistics.mean(diff):+.3f} ± {sd:.3f} | {w} / {l} / {len(diff) - w - l} |")
    print()
    print(f"Sign test over all (trace, seed) pairs: learned better on {wins}, worse on {losses}; "
          f"two-sided p = {sign_test(wins, losses):.3g}.")


if __name__ == "__main__":
    main(sys.argv[1:])
