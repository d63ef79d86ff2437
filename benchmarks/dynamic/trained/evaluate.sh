#!/bin/sh
# Evaluation of the dynamically-trained policy (BENCHMARKS.md §11, "Trained for the dynamic
# replay"): every openb trace with times, seeds 42-51, K = 800, a quarter of the nodes; the
# trained file and FGD in one run, the shipped (statically-trained) policy in a second run on
# the same arrivals. Writes one JSON per trace and run into $OUT.
set -eu
T=${T:-../shared/traces/openb}
OUT=${OUT:-out/dynamic-trained}
ALLOT=${ALLOT:-allot}
mkdir -p "$OUT"
for t in default cpu0 cpu037 cpu050 cpu072 cpu100 cpu200 cpu235 cpu250 cpu300 gpushare20 \
         gpushare40 gpushare60 gpushare80 gpushare100 gpuspec05 gpuspec10 gpuspec20 gpuspec25; do
  common="simulate --dynamic --trace-dir $T --pods $t --seeds 42-51 --threads 1 -q --json \
    --time-scale 800 --nodes-fraction 0.25"
  $ALLOT $common --policy learned,fgd \
    --policy-file benchmarks/dynamic/trained/learned-dynamic.json > "$OUT/$t-trained.json"
  $ALLOT $common --policy learned > "$OUT/$t-shipped.json"
done
