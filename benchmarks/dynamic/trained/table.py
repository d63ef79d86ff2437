#!/usr/bin/env python3
"""The table of BENCHMARKS.md §11, "Trained for the dynamic replay": per trace, mean failed GPU %
and GPU allocation % at the last arrival over seeds 42-51 for the dynamically-trained policy,
FGD and the shipped policy; paired differences (trained - FGD, trained - shipped) per seed."""
import json, statistics, sys
out = sys.argv[1] if len(sys.argv) > 1 else "out/dynamic-trained"
traces = ["default", "cpu0", "cpu037", "cpu050", "cpu072", "cpu100", "cpu200", "cpu235", "cpu250",
          "cpu300", "gpushare20", "gpushare40", "gpushare60", "gpushare80", "gpushare100",
          "gpuspec05", "gpuspec10", "gpuspec20", "gpuspec25"]
def runs(path, policy):
    d = json.load(open(path))
    p = [p for p in d["policies"] if p["policy"] == policy][0]
    return {r["seed"]: r["summary"] for r in p["runs"]}
def m(xs): return statistics.mean(xs)
print("| trace | failed GPU % trained | fgd | shipped | trained - fgd (sd) | trained - shipped (sd) "
      "| alloc % at last arrival trained | fgd | shipped |")
print("|---|---|---|---|---|---|---|---|---|")
tot = {"tf": [], "ts": [], "t": [], "f": [], "s": []}
for t in traces:
    tr = runs(f"{out}/{t}-trained.json", "learned")
    fg = runs(f"{out}/{t}-trained.json", "fgd")
    sh = runs(f"{out}/{t}-shipped.json", "learned")
    seeds = sorted(tr)
    f = lambda r, k: [r[s][k] for s in seeds]
    a, b, c = f(tr, "failed_gpu_pct"), f(fg, "failed_gpu_pct"), f(sh, "failed_gpu_pct")
    d1 = [x - y for x, y in zip(a, b)]
    d2 = [x - y for x, y in zip(a, c)]
    e = [m(f(r, "end_alloc_pct")) for r in (tr, fg, sh)]
    tot["tf"].append(m(d1)); tot["ts"].append(m(d2))
    tot["t"].append(m(a)); tot["f"].append(m(b)); tot["s"].append(m(c))
    print(f"| {t} | {m(a):.2f} | {m(b):.2f} | {m(c):.2f} | {m(d1):+.2f} ({statistics.stdev(d1):.2f}) "
          f"| {m(d2):+.2f} ({statistics.stdev(d2):.2f}) | {e[0]:.2f} | {e[1]:.2f} | {e[2]:.2f} |")
print(f"| mean of 19 | {m(tot['t']):.2f} | {m(tot['f']):.2f} | {m(tot['s']):.2f} | {m(tot['tf']):+.2f} "
      f"| {m(tot['ts']):+.2f} | | | |")
def better(k):
    return sum(1 for x in tot[k] if x < -1e-9), sum(1 for x in tot[k] if x > 1e-9)
print(f"\ntraces trained < fgd / > fgd: {better('tf')}; trained < shipped / > shipped: {better('ts')}")
# Per evaluation seed, the mean over the 19 traces of the paired difference; the sd and
# standard error over the 10 seeds (seeds are independent; traces of one seed are not).
for name, other, run in (("fgd", "fgd", "trained"), ("shipped", "learned", "shipped")):
    per_seed = {}
    for t in traces:
        tr = runs(f"{out}/{t}-trained.json", "learned")
        ot = runs(f"{out}/{t}-{run}.json", other)
        for s in tr:
            per_seed.setdefault(s, []).append(tr[s]["failed_gpu_pct"] - ot[s]["failed_gpu_pct"])
    d = [m(v) for v in per_seed.values()]
    sd = statistics.stdev(d)
    print(f"trained - {name}, mean over traces per seed: {m(d):+.3f} (sd {sd:.3f}, se {sd / len(d) ** 0.5:.3f}, "
          f"{sum(1 for x in d if x < 0)} of {len(d)} seeds below 0)")
