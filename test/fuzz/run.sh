#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target given on the command line for FUZZ_SECONDS
# (default 60) on its seed corpus test/fuzz/corpus/<target>/ (read only; what the
# fuzzer finds goes to build/fuzz/corpus/<target>/) with the dictionary
# test/fuzz/<target>.dict when there is one. Prints executions and crashes per
# target; a crash leaves its input in build/fuzz/artifacts/ and fails the run.
set -u
seconds=${FUZZ_SECONDS:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build/fuzz
mkdir -p "$out/artifacts" "$out/logs"
failed=0
summary=()
for bin in "$@"; do
    name=$(basename "$bin")
    work=$out/corpus/$name
    mkdir -p "$work"
    dict=()
    [ -f "$root/test/fuzz/$name.dict" ] && dict=(-dict="$root/test/fuzz/$name.dict")
    log=$out/logs/$name.log
    echo "== $name: ${seconds}s"
    "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name-" "${dict[@]}" \
        "$work" "$root/test/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    crashes=0
    if [ "$rc" -ne 0 ]; then
        crashes=1
        failed=1
        grep -E "ERROR: |SUMMARY: |Test unit written to|runtime error" "$log" | head -20
    fi
    line="$name: ${execs:-?} executions (${speed:-?}/s), $crashes crashes"
    echo "$line"
    summary+=("$line")
done
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
[ "$failed" -eq 0 ] && echo "fuzz: no crashes" || echo "fuzz: CRASHES found (inputs in $out/artifacts)"
exit "$failed"
