#!/usr/bin/env bash
# Runs cmocka test binaries, prints their output, and ends with one line
# "N passed, M failed" for the whole run. Exit status 1 when anything failed.
# A binary that crashes or exits non-zero without a cmocka summary counts as one failure.
set -u
export DOWNLOADER_BIN="${DOWNLOADER_BIN:-$PWD/${BUILD:-build}/downloader}"
export DOWNLOADER_TOOLS="${DOWNLOADER_TOOLS:-$PWD/${BUILD:-build}/test/tools}"
export DOWNLOADER_SRC="$PWD"
# Sanitizer reports of every process (tests and the daemons they start) land here;
# any report fails the run, so a leak in a daemon cannot hide in a deleted log.
san_dir=$(mktemp -d /tmp/dl-sanitizer-XXXXXX)
export ASAN_OPTIONS="log_path=$san_dir/asan:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$san_dir/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/test/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0
failed=0
out=$(mktemp)
for t in "$@"; do
    echo "== $t"
    "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $t exited with status $rc without a test summary"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
rm -f "$out"
if [ -n "$(ls -A "$san_dir" 2>/dev/null)" ]; then
    echo "!! sanitizer reports:"
    cat "$san_dir"/*
    failed=$((failed + 1))
fi
rm -rf "$san_dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
