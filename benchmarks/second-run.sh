#!/bin/sh
# What a second identical nightly costs against the first: the same config
# run twice in a row.  The second must build nothing (its kernels' inputs
# did not change).  Prints each run's wall time and its "kernels:" line.
#
#   benchmarks/second-run.sh [CONFIG]      (default: benchmarks/nightly.toml)
#
# For a first run that builds, remove the config's kernels from
# ~/.cache/kvariant/kernels/ first (the build directory stays warm: what
# the first run then pays is the incremental builds of a moved tree).
set -eu
cd "$(dirname "$0")/.."
config=${1:-benchmarks/nightly.toml}
results=benchmarks/results
mkdir -p "$results"
for n in 1 2; do
    start=$(date +%s)
    ./pipeline.py run --config "$config" --results "$results" --run-id "second-run-$(date +%Y%m%d-%H%M%S)-$n" \
        >"$results/second-run-$n.out" 2>"$results/second-run-$n.err" || true
    end=$(date +%s)
    echo "run $n: $((end - start)) s; $(grep -h '^kernels:' "$results/second-run-$n.err")"
done
