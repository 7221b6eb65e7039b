# Shared by benchmarks/aa.sh and benchmarks/power.sh (sourced, not run):
# run one config K times into one results directory, then `calibrate` on
# those runs.  Each command is printed (with a leading "+ ") before it runs,
# so every figure can be traced to the command behind it.

usage() {
    cat <<USAGE
usage: $0 [-k K] [-t FRACTION] [-n] [RESULTS-DIR]

Runs $CONFIG K times (default 3) as runs $PREFIX-1 ... $PREFIX-K in
RESULTS-DIR (default: results/$PREFIX-<date>-<time>), then
'./pipeline.py calibrate' on them, which writes calibrate.md and
calibrate.json into RESULTS-DIR and prints the table.
  -k K          number of runs (at least 2 for boot-to-boot figures across runs)
  -t FRACTION   the verdicts' threshold (default 0.05)
  -n            dry run: print the commands, run nothing
USAGE
}

show() {  # print a command, then run it unless a dry run
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$dry_run" = 0 ]; then
        "$@"
    fi
}

main() {
    local k=3 threshold=0.05 results
    dry_run=0
    while getopts "k:t:nh" opt; do
        case $opt in
            k) k=$OPTARG ;;
            t) threshold=$OPTARG ;;
            n) dry_run=1 ;;
            h) usage; exit 0 ;;
            *) usage >&2; exit 1 ;;
        esac
    done
    shift $((OPTIND - 1))
    if [ $# -gt 1 ]; then
        echo "$0: expected at most one RESULTS-DIR, got $#: $*" >&2
        exit 1
    fi
    case $k in
        '' | *[!0-9]* | 0 | 0*) echo "$0: -k: expected a number of runs >= 1, got '$k'" >&2; exit 1 ;;
    esac
    if [ $# = 1 ]; then
        results=$(realpath -m -- "$1")  # before the cd: relative to where it was given
    else
        results=results/$PREFIX-$(date +%Y%m%d-%H%M%S)
    fi
    cd "$(dirname "$0")/.."
    local runs=() i rc
    for i in $(seq 1 "$k"); do
        rc=0
        show ./pipeline.py run --config "$CONFIG" --results "$results" --run-id "$PREFIX-$i" || rc=$?
        # 2: a variant failed; its guest is left out, the others still count
        if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
            echo "$0: run $PREFIX-$i ended with exit code $rc; stopping" >&2
            exit "$rc"
        fi
        runs+=("$results/$PREFIX-$i")
    done
    if declare -F calibrations >/dev/null; then  # the script's own
        calibrations "$results" "$threshold" "${runs[@]}"
    else
        show ./pipeline.py calibrate "${runs[@]}" --threshold "$threshold" --out "$results"
    fi
}
