#!/usr/bin/env bash
# Throughput with 1 and with 3 processors against a slow origin (docs/operations.md,
# "Sizing"). Each processor may run SCALE_CONC (50) downloads at once and every
# download takes SCALE_DELAY_MS (200) at the origin (test/origin.py, delay_ms), so one
# processor is the bottleneck; the aggregations (20 x limit 20) leave room for three.
# One api and one notifier; callbacks go to nginx. Jobs/s = jobs / (first POST -> last
# callback); the ideal is processors x SCALE_CONC x 1000 / SCALE_DELAY_MS.
#   bench/scale.sh           prints a table
#   bench/scale.sh --rows    prints "bench|metric|value|target|status" rows (bench/run.sh)
# Environment: SCALE_JOBS (3000), SCALE_CONC, SCALE_DELAY_MS, BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/downloader
JOBS=${SCALE_JOBS:-3000}
CONC=${SCALE_CONC:-50}
DELAY=${SCALE_DELAY_MS:-200}
MODE=${1:-table}

DEPS_EXTRA="wrk nginx-light" ./.ci/deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
[ -x "$BIN" ] || die "no $BIN: run make first"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_redis
start_nginx
ORIGIN_PORT=$(free_port)
spawn origin python3 test/origin.py --port "$ORIGIN_PORT"
wait_port "$ORIGIN_PORT" origin || die "test/origin.py did not start"

# run_scale N: one run with N processors. Sets RATE (jobs/s), CALLED (callbacks seen).
run_scale() {
    local n=$1 port cfg=$T/scale.json d=$S/scale i
    rcli flushall >/dev/null
    curl -s -X POST "http://127.0.0.1:$ORIGIN_PORT/_reset" >/dev/null
    port=$(free_port)
    rm -rf "$d"
    mkdir -p "$d/tmp" "$d/files"
    cat >"$cfg" <<JSON
{ "redis": {"addr": "127.0.0.1:$REDIS_PORT"},
  "api": {},
  "processor": {"storage_dir": "$d/tmp", "filestorage": {"type": "filesystem", "rootdir": "$d/files"},
                "download_url": "http://127.0.0.1:$port/files", "max_concurrency": $CONC,
                "stats_interval": 1000, "shutdown_grace": "1s"},
  "notifier": {"concurrency": 128, "deletion_interval": 10080, "stats_interval": 1000,
               "shutdown_grace": "1s"},
  "backends": {"http": {"timeout": 30}} }
JSON
    spawn scale_api "$BIN" api -c "$cfg" --host 127.0.0.1 -p "$port"
    wait_port "$port" scale_api || die "api did not start"
    spawn scale_notifier "$BIN" notifier -c "$cfg"
    for ((i = 1; i <= n; i++)); do spawn "scale_proc$i" "$BIN" processor -c "$cfg"; done
    sleep 0.5 # subscribed
    local base t0 out=$T/wrk_scale.$n.txt called=0
    base=$(cb_lines)
    t0=$(now)
    post_jobs "$out" "$port" "$JOBS" "http://127.0.0.1:$ORIGIN_PORT/data/1000?delay_ms=$DELAY&i=%d" \
        20 20 "http://127.0.0.1:$NGINX_PORT/cb" s
    for ((i = 0; i < 1800; i++)); do # at most 90 s
        called=$(($(cb_lines) - base))
        [ "$called" -ge "$JOBS" ] && break
        sleep 0.05
    done
    local last
    last=$(tail -n +"$((base + 1))" "$T/nginx/cb.log" | awk '$1 > m {m = $1} END {printf "%.3f", m}')
    CALLED=$called
    RATE=$(calc "$called / ($last - $t0)")
    for ((i = 1; i <= n; i++)); do stop "scale_proc$i"; done
    stop scale_notifier
    stop scale_api
}

log "scale: $JOBS jobs, $DELAY ms each at the origin, max_concurrency $CONC per processor"
run_scale 1
r1=$RATE c1=$CALLED
run_scale 3
r3=$RATE c3=$CALLED
ratio=$(calc "$r3 / $r1")
B="5 scale"
row "$B" "1 processor: jobs/s (ideal $(calc "$CONC * 1000 / $DELAY"))" "$(fmt "$r1")" "" "$(verdict [ "$c1" -ge "$JOBS" ])"
row "$B" "3 processors: jobs/s (ideal $(calc "3 * $CONC * 1000 / $DELAY"))" "$(fmt "$r3")" "" "$(verdict [ "$c3" -ge "$JOBS" ])"
row "$B" "3 processors / 1 processor" "$(fmt "$ratio" 2) x" ">= 2 x" "$(verdict ge "$ratio" 2)"

if [ "$MODE" = --rows ]; then
    printf '%s\n' "${ROWS[@]}"
else
    for r in "${ROWS[@]}"; do
        IFS='|' read -r b m v t s <<<"$r"
        printf '%-10s %-45s %12s %-8s %s\n' "$b" "$m" "$v" "$t" "$s"
    done
fi
