#!/usr/bin/env python3
"""Compare several learned policy files against FGD from one CSV of `allot simulate` runs.csv
rows with a leading `policy_file` column (benchmarks/learned-whole/*.csv): per trace the mean
paired learned - fgd over seeds with better / worse seeds, then per file the traces better than
FGD, the mean difference and a two-sided sign test over every (trace, seed) pair."""
import csv
import math
import statistics
import sys


def sign_test(wins, losses):
    n = wins + losses
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def main(path):
    runs = {}
    traces, files = [], []
    for r in csv.DictReader(open(path)):
        f, t = r["policy_file"], r["trace"]
        files += [f] if f not in files else []
        traces += [t] if t not in traces else []
        runs.setdefault((f, t), {}).setdefault(r["policy"], {})[int(r["seed"])] = float(
            r["unallocated_gpu_pct_at_100"]
        )
    print("| trace | fgd | " + " | ".join(f"{f}: learned - fgd (better / worse)" for f in files) + " |")
    print("|---" * (2 + len(files)) + "|")
    total = {f: [0, 0, 0, 0.0] for f in files}
    for t in traces:
        cells = []
        for f in files:
            by = runs[(f, t)]
            seeds = sorted(by["fgd"])
            d = [by["learned"][s] - by["fgd"][s] for s in seeds]
            w, l, m = sum(x < -1e-9 for x in d), sum(x > 1e-9 for x in d), statistics.mean(d)
            fgd = statistics.mean(by["fgd"].values())
            total[f][0] += w
            total[f][1] += l
            total[f][2] += m < 0
            total[f][3] += m / len(traces)
            cells.append(f"{m:+.3f} ({w} / {l})")
        print(f"| {t} | {fgd:.2f} | " + " | ".join(cells) + " |")
    print("| traces better than FGD | | " + " | ".join(str(total[f][2]) for f in files) + " |")
    print("| mean over traces | | " + " | ".join(f"{total[f][3]:+.3f}" for f in files) + " |")
    print(
        "| pairs better / worse, sign test p | | "
        + " | ".join(f"{total[f][0]} / {total[f][1]}, p = {sign_test(total[f][0], total[f][1]):.1e}" for f in files)
        + " |"
    )


if __name__ == "__main__":
    main(sys.argv[1])
