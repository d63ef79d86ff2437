#!/usr/bin/env python3
"""Pooled throughput ratio of `e2e/bench` results, with a bootstrap 90 % interval.

    scripts/bench-ratio.py [target/e2e-bench.json ...]

For each extender mode (its whole --answers value, so auto and auto-p100 are two): the pooled
ratio (all pods bound with the extender over all seconds, against the same without it, over
every round), and the 5th-95th percentile of that ratio
over 10,000 resamplings of whole rounds with replacement (seeded, so reruns agree). Rounds are
resampled as units because the runs of one round share the machine's speed at that time.
"""

import json
import random
import sys


def pooled(rounds, mode):
    pods = sum(r[mode][0] for r in rounds)
    secs = sum(r[mode][1] for r in rounds)
    base_pods = sum(r[None][0] for r in rounds)
    base_secs = sum(r[None][1] for r in rounds)
    return (pods / secs) / (base_pods / base_secs)


def main(paths):
    runs = []
    for p in paths or ["target/e2e-bench.json"]:
        with open(p) as f:
            runs.extend((p, r) for r in json.load(f))
    by_round = {}
    for path, r in runs:
        mode = r["filter_answer"] if r["extender"] else None
        res = r["result"]
        by_round.setdefault((path, r["round"]), {})[mode] = (res["bound"], res["seconds"])
    rounds = [m for m in by_round.values() if None in m]
    modes = sorted({k for m in rounds for k in m if k is not None})
    rng = random.Random(7)
    nodes = sorted({r["nodes"] for _, r in runs})
    # The run without the extender at its percentageOfNodesToScore (--alone-percentage), so that
    # a ratio says what it is against; null (adaptive) in older results too.
    alone = sorted(
        {r.get("percentage_of_nodes_to_score") for _, r in runs if not r["extender"]},
        key=lambda p: -1 if p is None else p,
    )
    without = ", ".join("adaptive" if p is None else str(p) for p in alone)
    print(f"nodes {nodes}, {len(rounds)} rounds; without the extender at percentageOfNodesToScore {without}")
    for mode in modes:
        have = [m for m in rounds if mode in m]
        ratio = pooled(have, mode)
        boot = sorted(
            pooled([rng.choice(have) for _ in have], mode) for _ in range(10_000)
        )
        lo, hi = boot[int(0.05 * len(boot))], boot[int(0.95 * len(boot)) - 1]
        per_round = ", ".join(
            f"{(m[mode][0] / m[mode][1]) / (m[None][0] / m[None][1]):.2f}" for m in have
        )
        print(f"{mode}: pooled {ratio:.3f}, 90 % interval {lo:.3f}-{hi:.3f} (per round: {per_round})")


if __name__ == "__main__":
    main(sys.argv[1:])
