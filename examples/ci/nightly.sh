#!/usr/bin/env bash
# The nightly job's commands, shared by github-nightly.yml and
# gitlab-nightly.yml.  Runs from the project's checkout, as root, on a
# self-hosted runner, after ./setup.sh.
#
#   examples/ci/nightly.sh run RUN-ID       the pipeline against the previous night; exits with its code
#   examples/ci/nightly.sh collect RUN-ID   copies the run's directory to results/RUN-ID/ in the checkout
#
# Environment (the CI files set it):
#   KVARIANT_CONFIG    the pipeline config (default pipeline.toml)
#   KVARIANT_TREE      the kernel tree, read by the pipeline in place of the
#                      config's [kernel] tree; empty: the config's own tree
#   KVARIANT_RESULTS   where runs are kept from night to night (default /var/lib/kvariant/results)
#   KVARIANT_DEADLINE  SIGTERM to the pipeline after this long, in timeout(1)'s
#                      syntax (default 160m): it stops cleanly before the job's timeout
#   KVARIANT_CACHE     read by ./setup.sh and the pipeline: kernel trees, builds, kernels
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
config=${KVARIANT_CONFIG:-pipeline.toml}
results=${KVARIANT_RESULTS:-/var/lib/kvariant/results}

say() { printf 'nightly: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

meaning() {
    case $1 in
        0) echo "every variant passed, no regression" ;;
        1) echo "bad input or config (the line above names it)" ;;
        2) echo "a variant failed or a regression was found: open report.html" ;;
        3) echo "the host cannot do the work (results dir, disk space...)" ;;
        130) echo "interrupted (cancelled, or past KVARIANT_DEADLINE): what had finished is kept" ;;
        *) echo "not one of kvariant's exit codes" ;;
    esac
}

run() {
    local run_id=$1 pid rc=0
    [ -f "$config" ] || die "no config $config (KVARIANT_CONFIG)"
    # KVARIANT_TREE, when set, is read by the pipeline itself (run --tree's default).
    local cmd=(./pipeline.py run --config "$config" --results "$results" --run-id "$run_id" --against last)
    say "${cmd[*]}"
    # In the background, so that this shell can hand the CI's cancel on
    # (GitHub sends SIGINT then SIGTERM to this process, GitLab SIGTERM to its
    # process group): the pipeline then tears its VM down, keeps what has
    # finished and exits 130.  timeout sends the same SIGTERM at the deadline.
    timeout --preserve-status "${KVARIANT_DEADLINE:-160m}" "${cmd[@]}" &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
    # wait returns early when a signal comes in: wait again until the pipeline has ended.
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
    wait "$pid" || rc=$?
    say "the pipeline exited $rc: $(meaning "$rc")"
    # GitHub Actions: the last step fails the job with this code.
    if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "rc=$rc" >> "$GITHUB_OUTPUT"; fi
    return "$rc"
}

collect() {
    local from=$results/$1 to=results/$1
    if [ ! -d "$from" ]; then
        say "no $from: the run did not start, nothing to collect"
        return 0
    fi
    if [ ! "$from" -ef "$to" ]; then
        rm -rf "$to"
        mkdir -p results
        cp -a "$from" "$to"
    fi
    say "collected $from into $to"
    # A run stopped hard (GitHub kills a cancelled step after 10 s) may lack its reports.
    if [ ! -f "$to/report.html" ] && [ -f "$to/summary.json" ]; then
        say "no report.html: rebuilding the reports from what the run left"
        ./pipeline.py compare "$to" --out "$to" >&2 || say "could not rebuild the reports"
    fi
}

case "${1:-}" in
    run|collect) [ -n "${2:-}" ] || die "usage: $0 run|collect RUN-ID"; "$1" "$2" ;;
    *) die "usage: $0 run|collect RUN-ID" ;;
esac
