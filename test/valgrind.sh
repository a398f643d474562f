#!/usr/bin/env bash
# `make valgrind`: runs integration tests (default: those given, else test_api and
# test_pipeline) with
# every daemon they start under valgrind --leak-check=full, through a wrapper given to
# the harness as $DOWNLOADER_BIN; one valgrind log per daemon process in
# build/valgrind/. Fails when a test fails, when a log reports an invalid read or
# write (or any other memory error), memory definitely or indirectly lost with one of
# our source files in the stack. A daemon killed before it could exit (the kill -9
# tests) leaves no summary: it is listed as not checked.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
out=$root/$build/valgrind
rm -rf "$out"
mkdir -p "$out"
wrapper=$out/downloader-vg
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=40 \\
    --track-fds=no --log-file="$out/vg-%p.log" "$root/$build/downloader" "\$@"
WRAP
chmod +x "$wrapper"
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=("$build/test/integration/test_api" "$build/test/integration/test_pipeline")
cd "$root"
DOWNLOADER_BIN=$wrapper BUILD=$build ./test/run.sh "${tests[@]}"
rc=$?
# our code: a frame "(file.c:line)" naming one of src/*.c
ours=$(cd src && ls *.c | sed 's/\./[.]/g' | paste -sd'|')
problems=0
logs=0
killed=0
for log in "$out"/vg-*.log; do
    [ -e "$log" ] || continue
    grep -q "Command: .*downloader" "$log" || continue
    logs=$((logs + 1))
    if ! grep -q "ERROR SUMMARY" "$log"; then
        killed=$((killed + 1)) # kill -9 tests do this on purpose; nothing to check
        echo "-- $log: killed before exit, not checked ($(sed -n 's/.*Command: //p' "$log"))"
        continue
    fi
    # memory errors (invalid read/write, uninitialised values, bad frees, overlaps)
    if grep -qE "Invalid (read|write|free)|uninitialised|Mismatched free|overlap|Syscall param" "$log"; then
        echo "!! $log: memory errors"
        problems=$((problems + 1))
    fi
    # leak records: blocks from "are definitely/indirectly lost" to the next blank record
    leaks=$(awk -v ours="($ours):[0-9]+\\\\)" '
        / are (definitely|indirectly) lost in loss record / { rec = $0; inrec = 1; hit = 0; next }
        inrec && /^==[0-9]+== *$/ { if (hit) print rec; inrec = 0; next }
        inrec { rec = rec "\n" $0; if ($0 ~ ours) hit = 1 }
        END { if (inrec && hit) print rec }' "$log")
    if [ -n "$leaks" ]; then
        echo "!! $log: leaks from our code:"
        echo "$leaks"
        problems=$((problems + 1))
    fi
done
echo "valgrind: $((logs - killed)) daemon logs checked in $out ($killed killed on purpose), $problems with problems"
[ "$logs" -gt 0 ] || { echo "!! no daemon ran under valgrind"; problems=$((problems + 1)); }
[ "$rc" -eq 0 ] && [ "$problems" -eq 0 ]
