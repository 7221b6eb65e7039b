#!/usr/bin/env bash
# Power: the default pipeline.toml (baseline against parallel-dio) run K
# times; then `./pipeline.py calibrate` on those runs (two kernels: power
# mode) prints per point how often parallel-dio is called better (and
# worse) and the median 95% half-width.  The figure to watch is
# fuse-passthrough nj2; the xfs rows are the control and should show none.
#
#   benchmarks/power.sh [-k K] [-t FRACTION] [-n] [RESULTS-DIR]  (-h for help)
set -euo pipefail
CONFIG=pipeline.toml
PREFIX=power
# shellcheck source=lib/repeat.sh
source "$(dirname "$0")/lib/repeat.sh"
main "$@"
