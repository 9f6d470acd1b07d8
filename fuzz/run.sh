#!/usr/bin/env bash
# Time-boxed libFuzzer runs of the fuzz targets, one after another.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 30 s each, every target
#   FUZZ_RUNS=20000 fuzz/run.sh 30        reproducible: 20000 runs each from seed 1
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The stable toolchain is enough:
# RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes for the sanitizer and coverage.
# New inputs go to fuzz/work/TARGET (ignored by git), so fuzz/corpus/TARGET keeps only the
# hand-made seeds. A crash stops the script with a non-zero status and the end of libFuzzer's
# report; the input is saved under fuzz/artifacts/TARGET/ (docs/fuzzing.md says how to keep it
# as a regression input). The full output of each run is in fuzz/work/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(pipeline control_request ethernet vxlan lacp vhost_queue evpn fdb)
fi

# FUZZ_RUNS=N makes each run reproducible: N executions from seed 1, starting
# from the committed seeds only (CI uses this, so its verdict does not depend on
# luck or machine speed; SECONDS then only caps a run that goes slow).
limit=(-max_total_time="$secs")
if [ -n "${FUZZ_RUNS:-}" ]; then
    limit=(-runs="$FUZZ_RUNS" -seed=1 -max_total_time=$((secs * 4)))
fi

export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    log="work/$t.log"
    if [ -n "${FUZZ_RUNS:-}" ]; then
        rm -rf "work/$t" && mkdir -p "work/$t"
        echo "==> fuzzing $t: $FUZZ_RUNS runs from seed 1 (log: fuzz/$log)"
    else
        echo "==> fuzzing $t for ${secs}s (log: fuzz/$log)"
    fi
    if ! cargo fuzz run -O "$t" "work/$t" "corpus/$t" -- \
        "${limit[@]}" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $t failed; its input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::(number_of_executed_units|peak_rss_mb))' "$log" || true
done
