#!/usr/bin/env python3
"""Unallocated GPU % at 100 % arrived with every GPU of the cluster in one pool.

    scripts/pooled-gpus.py [--trace-dir DIR] [--pods T1,T2|published] [--seeds 42-51]
                           [--rules bf,fgd,bfd,table] [--table POLICY.json]

A relaxation of the FGD replay (../shared/traces/README-benchmark-notes.md, sections 3 and 4)
that asks how much of a trace's unallocated GPU is the packing of GPU shares alone. The cluster
is its GPUs and nothing else: no nodes, no CPU, memory or GPU-model limits; a pod asking for k
whole GPUs takes any k idle ones; CPU-only pods use nothing. A share goes to a device chosen by
an online rule, seeing only the pods so far (it is never held back while one fits):

  bf   best fit: the device with the least free milli that still fits it (an idle one if none);
  fgd  FGD's device-level rule: the device whose fragmentation grows least, a device's
       fragmentation being its free milli times the share of the trace's GPU pods (by count)
       that cannot use it (whole-GPU pods cannot use a partly used device); ties by best fit;
  table  a learned device cost table (`allot train --device-costs`, BENCHMARKS.md section 8):
       the device of least V(f - s) - V(f), then the fullest, V read at the free milli's
       10-milli level from the policy file given by --table (its top-level device_costs);
       the rule of `DeviceCosts::best_of` in src/policy/learned/costs.rs;
  bfd  hindsight, not online: the shares that arrived by 100 %, sorted largest first, each by
       best fit. If every share is placed, the whole-GPU pods fill the devices left and the
       unallocated GPU is the shares' devices' free milli, which this prints (the shares' order
       is all it changes; which pods to leave out is not searched, as the simulator's
       `--bound` does). Where shares are most of the demand (the gpushare traces from 60 on)
       placing every one costs more than an online replay in which some fail, so the column
       is higher than bf there; when they need more devices than the cluster has, it is '-'.

Pods are replayed by the protocol (sorted by name, shuffled, topped up with draws to 1.3 x
capacity with the per-GPU-milli check), with Python's generator: a seed gives a different
order than the simulator's seed of the same number. The figure for a seed is the mean
unallocated GPU over the events whose arrived GPU rounds to 100 % of capacity, as the
simulator's table; it is printed with the part of it in partly used devices.

Every constraint the real cluster adds can only be dealt with by a placement, so on a trace
where the simulator's policies leave more than this, the gap is what node, CPU and memory
limits cost them; where they leave about this, what is left is the order in which shares
arrive. It is not a bound on what an online policy can do: a cleverer rule than these two could
pack the pool better.
"""

import argparse
import bisect
import csv
import os
import random
import statistics
import sys

PUBLISHED = ("default,cpu050,cpu100,cpu200,cpu250,gpushare40,gpushare60,gpushare80,gpushare100,"
             "gpuspec10,gpuspec20,gpuspec25,multigpu20,multigpu30,multigpu40")
FULL = 1000


def load_pods(path):
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["name"])
    pods = []
    for r in rows:
        try:
            pods.append((int(r["num_gpu"]), int(r["gpu_milli"])))
        except (KeyError, ValueError) as e:
            sys.exit(f"{path}: pod {r.get('name', '?')}: bad num_gpu or gpu_milli ({e})")
    return pods


def capacity_gpus(path):
    with open(path, newline="") as f:
        return sum(int(r["gpu"]) for r in csv.DictReader(f))


def arrivals(pods, capacity, rng):
    """The protocol's pod order: shuffled, then topped up (or cut) to 1.3 x capacity."""
    order = list(pods)
    rng.shuffle(order)
    target = 13 * capacity // 10
    total = sum(g * m for g, m in order)
    if total < target:
        while True:
            g, m = pods[rng.randrange(len(pods))]
            if total + m > target:
                break
            order.append((g, m))
            total += g * m
    else:
        while total > target:
            g, m = order.pop(rng.randrange(len(order)))
            total -= g * m
    return order


def fragmentation_table(pods):
    """frag[f]: free milli f on one partly used device times the share of GPU pods that cannot
    use it."""
    shares = sorted(m for g, m in pods if g == 1 and m < FULL)
    gpu_pods = sum(1 for g, _ in pods if g > 0)
    frag = [0.0] * (FULL + 1)
    for f in range(FULL):
        fits = bisect.bisect_right(shares, f)
        frag[f] = f * (1 - fits / gpu_pods) if gpu_pods else 0.0
    return frag


def load_table(path):
    """The 101 values of a policy file's top-level device cost table, as a cost per free milli."""
    import json
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"--table: cannot read {path}: {e}")
    values = (doc.get("device_costs") or {}).get("values") if isinstance(doc, dict) else None
    if not isinstance(values, list) or len(values) != 101:
        sys.exit(f"--table: {path} has no top-level device_costs of 101 values "
                 "(a combined policy keeps one per expert: give the expert's own file)")
    if not all(isinstance(v, (int, float)) for v in values):
        sys.exit(f"--table: {path}: device_costs values must be numbers")
    return [float(values[min(f // 10, 100)]) for f in range(FULL + 1)]


def replay(order, gpus, rule, frag):
    """Mean unallocated and partly used GPU % over the events at 100 % arrived."""
    capacity = gpus * FULL
    idle = gpus
    count = [0] * FULL  # partly used devices by free milli
    levels = []  # the free levels with count > 0, sorted
    arrived = allocated = 0
    at = {}  # rounded arrived % -> [sum unallocated, sum partly used, events]

    def remove(f):
        count[f] -= 1
        if count[f] == 0:
            levels.pop(bisect.bisect_left(levels, f))

    def add(f):
        if f > 0:
            if count[f] == 0:
                bisect.insort(levels, f)
            count[f] += 1

    for g, m in order:
        arrived += g * m
        if g > 0 and m >= FULL:
            if idle >= g:
                idle -= g
                allocated += g * m
        elif g > 0:
            i = bisect.bisect_left(levels, m)
            if rule == "bf":
                f = levels[i] if i < len(levels) else (FULL if idle else None)
            else:  # fgd or table: frag holds the rule's cost per free milli
                cands = levels[i:] + ([FULL] if idle else [])
                f = min(cands, key=lambda f: (frag[f - m] - frag[f], f), default=None)
            if f is not None:
                if f == FULL:
                    idle -= 1
                else:
                    remove(f)
                add(f - m)
                allocated += m
        x = round(arrived * 100 / capacity)
        if 99 <= x <= 101:
            partly = sum(f * count[f] for f in levels)
            s = at.setdefault(x, [0.0, 0.0, 0])
            s[0] += 100 - allocated * 100 / capacity
            s[1] += partly * 100 / capacity
            s[2] += 1
    if not at:
        return None
    # The events at 100 %, or if there are none those within 1 point of it.
    s = at.get(100) or [sum(v) for v in zip(*at.values())]
    return s[0] / s[2], s[1] / s[2]


def hindsight(order, gpus):
    """Unallocated GPU % if the shares that arrived by 100 % are packed largest first, best fit."""
    capacity = gpus * FULL
    arrived, shares = 0, []
    for g, m in order:
        if round((arrived + g * m) * 100 / capacity) > 100:
            break
        arrived += g * m
        if g == 1 and m < FULL:
            shares.append(m)
    count = [0] * FULL
    levels = []
    opened = 0
    for m in sorted(shares, reverse=True):
        i = bisect.bisect_left(levels, m)
        if i < len(levels):
            f = levels[i]
            count[f] -= 1
            if count[f] == 0:
                levels.pop(i)
        else:
            f = FULL
            opened += 1
        if f - m > 0:
            if count[f - m] == 0:
                bisect.insort(levels, f - m)
            count[f - m] += 1
    if opened > gpus:
        return "more"
    waste = opened * FULL - sum(shares)
    return waste * 100 / capacity, waste * 100 / capacity


def seeds_arg(text):
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds must be like 42-51 or 1,3,5, got {text!r}")
        if hi < lo:
            raise argparse.ArgumentTypeError(f"seed range {part!r} is empty")
        out.extend(range(lo, hi + 1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace-dir", default="../shared/traces/openb")
    ap.add_argument("--pods", default="default", help="traces, comma-separated, or 'published'")
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("42-51"))
    ap.add_argument("--rules", default="bf,fgd,bfd")
    ap.add_argument("--table", help="policy file whose device cost table the rule 'table' uses")
    a = ap.parse_args()
    rules = a.rules.split(",")
    bad = [r for r in rules if r not in ("bf", "fgd", "bfd", "table")]
    if bad:
        sys.exit(f"--rules: unknown rule {bad[0]!r} (bf, fgd, bfd or table)")
    if ("table" in rules) != bool(a.table):
        sys.exit("--rules table and --table POLICY.json go together")
    table = load_table(a.table) if a.table else None
    node_csv = os.path.join(a.trace_dir, "openb_node_list_gpu_node.csv")
    if not os.path.isfile(node_csv):
        sys.exit(f"--trace-dir: {node_csv} not found")
    gpus = capacity_gpus(node_csv)
    traces = (PUBLISHED if a.pods == "published" else a.pods).split(",")
    print(f"{gpus} GPUs in one pool; seeds {a.seeds[0]}-{a.seeds[-1]} ({len(a.seeds)}); "
          "unallocated GPU % at 100 % arrived, mean ± sd over seeds (partly used devices)")
    print(f"{'trace':<12} " + " ".join(f"{r:>22}" for r in rules))
    for t in traces:
        path = os.path.join(a.trace_dir, f"openb_pod_list_{t}.csv")
        if not os.path.isfile(path):
            sys.exit(f"--pods: {path} not found")
        pods = load_pods(path)
        frag = fragmentation_table(pods)
        cells = []
        for rule in rules:
            res = []
            for seed in a.seeds:
                order = arrivals(pods, gpus * FULL, random.Random(seed))
                costs = table if rule == "table" else frag
                r = hindsight(order, gpus) if rule == "bfd" else replay(order, gpus, rule, costs)
                if r is None:
                    sys.exit(f"{t}, seed {seed}: the replay never reached 100 % arrived")
                res.append(r)
            if "more" in res:
                cells.append("-")
                continue
            un = [r[0] for r in res]
            sd = statistics.stdev(un) if len(un) > 1 else 0.0
            cells.append(f"{statistics.mean(un):5.2f} ± {sd:4.2f} ({statistics.mean(r[1] for r in res):5.2f})")
        print(f"{t:<12} " + " ".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
