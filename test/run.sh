#!/usr/bin/env bash
# Runs cmocka test binaries, prints their output, and ends with one line
# "N passed, M failed" for the whole run. Exit status 1 when anything failed.
# A binary that crashes or exits non-zero without a cmocka summary counts as one failure.
set -u
export DOWNLOADER_BIN="${DOWNLOADER_BIN:-$PWD/${BUILD:-build}/downloader}"
export DOWNLOADER_TOOLS="${DOWNLOADER_TOOLS:-$PWD/${BUILD:-build}/test/tools}"
export DOWNLOADER_SRC="$PWD"
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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
