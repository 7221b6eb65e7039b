#!/usr/bin/env bash
# A/A calibration: the default kernel as four variants (benchmarks/aa.toml),
# run K times; then `./pipeline.py calibrate` on those runs prints the false
# better/worse calls over every pair of guests (within a run and across
# runs), the run and boot CVs per point, and Kalibera-Jones' runs per boot.
#
#   benchmarks/aa.sh [-k K] [-t FRACTION] [-n] [RESULTS-DIR]     (-h for help)
set -euo pipefail
CONFIG=benchmarks/aa.toml
PREFIX=aa
# shellcheck source=lib/repeat.sh
source "$(dirname "$0")/lib/repeat.sh"
main "$@"
