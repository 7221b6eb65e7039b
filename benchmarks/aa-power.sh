#!/usr/bin/env bash
# A/A and power from the same runs (benchmarks/aa-power.toml): the default
# kernel four times (variants a, b, c and d: four guests of one kernel) and
# the parallel-dio series, run K times.  Then `./pipeline.py calibrate`
# twice: on a, b, c and d alone (A/A: every better/worse call is false),
# into RESULTS-DIR/aa, and on all five (power: parallel-dio against the
# default kernel, every pair of boots), into RESULTS-DIR/power.  In one run
# the A/A guests and the series are measured side by side, on the same
# host, by the same method.
#
#   benchmarks/aa-power.sh [-k K] [-t FRACTION] [-n] [RESULTS-DIR]  (-h for help)
set -euo pipefail
CONFIG=benchmarks/aa-power.toml
PREFIX=aap

calibrations() {  # RESULTS THRESHOLD RUN...
    local results=$1 threshold=$2
    shift 2
    show ./pipeline.py calibrate "$@" --threshold "$threshold" --variants a,b,c,d --out "$results/aa"
    show ./pipeline.py calibrate "$@" --threshold "$threshold" --out "$results/power"
}

# shellcheck source=lib/repeat.sh
source "$(dirname "$0")/lib/repeat.sh"
main "$@"
