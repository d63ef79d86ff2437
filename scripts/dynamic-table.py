#!/usr/bin/env python3
"""Render `allot simulate --dynamic --out DIR` results (each DIR's dynamic_runs.csv) as the
Markdown tables of BENCHMARKS.md §11: per policy, mean ± sd over seeds of the chosen columns.

  scripts/dynamic-table.py sweep DIR...   one row per (time scale, policy), every column
  scripts/dynamic-table.py traces DIR...  one row per trace, failed GPU % per policy
"""
import csv
import statistics
import sys

COLUMNS = [
    ("alloc_pct", "GPU alloc % (time mean)", 2),
    ("end_alloc_pct", "GPU alloc % at last arrival", 2),
    ("failed_pct", "failed pods %", 2),
    ("failed_gpu_pct", "failed GPU %", 2),
    ("wait_mean_s", "wait mean s", 0),
    ("wait_p50_s", "wait p50 s", 0),
    ("wait_p99_s", "wait p99 s", 0),
    ("mean_waiting", "pods waiting (time mean)", 1),
    ("frag_pct", "frag % (time mean)", 2),
]


def load(dirs):
    rows = []
    for d in dirs:
        with open(f"{d}/dynamic_runs.csv") as f:
            rows.extend(csv.DictReader(f))
    return rows


def cell(values, digits):
    values = [float(v) for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def groups(rows, key):
    out = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def sweep(rows):
    print("| K | policy | " + " | ".join(c[1] for c in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for (k, policy), rs in groups(rows, lambda r: (r["time_scale"], r["policy"])).items():
        cells = [cell([r[c] for r in rs], d) for c, _, d in COLUMNS]
        print(f"| {k} | {policy} | " + " | ".join(cells) + " |")


def traces(rows):
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    print("| trace | " + " | ".join(policies) + " |")
    print("|---" * (len(policies) + 1) + "|")
    for trace, rs in groups(rows, lambda r: r["trace"]).items():
        by = groups(rs, lambda r: r["policy"])
        cells = [f"{statistics.mean(float(r['failed_gpu_pct']) for r in by[p]):.2f}" for p in policies]
        print(f"| {trace} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    {"sweep": sweep, "traces": traces}[sys.argv[1]](load(sys.argv[2:]))
