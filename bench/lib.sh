# shellcheck shell=bash disable=SC2034
# Helpers for bench/run.sh (sourced). Everything runs on 127.0.0.1; every process we
# start is recorded by pid and stopped by pid on exit; all data lives under $T.

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/downloader-bench.XXXXXX")
mkdir -p "$T/logs"
# Downloaded files (benchmarks 2 and 3, aria2c) and the origin's files: on tmpfs unless
# BENCH_STORAGE names a directory, so that the figures are the service's, not those of
# the disk (benchmark "disk" repeats benchmark 2 with the files under $T).
if [ -n "${BENCH_STORAGE:-}" ]; then
    S=$(mktemp -d "$BENCH_STORAGE/downloader-bench.XXXXXX")
elif [ -d /dev/shm ] && [ -w /dev/shm ]; then
    S=$(mktemp -d /dev/shm/downloader-bench.XXXXXX)
else
    S=$T/storage
    mkdir -p "$S"
fi
declare -A PROC=()   # name -> pid
PROC_ORDER=()
BG_PIDS=()           # short-lived helpers (wrk, perf, pollers): killed on exit
ROWS=()              # "bench|metric|value|target|status"
NOTES=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# nap SECONDS: sleeps without forking (a read with a timeout on a pipe nobody writes):
# the polling loops that run while the service is measured used to fork `sleep` up to
# 100 times a second, CPU taken from the service on this 2-core machine.
exec {NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }
die() { log "FATAL: $*"; exit 1; }

# A free TCP port on 127.0.0.1 below the ephemeral range (so that the thousands of
# client connections of the benchmarks cannot collide with it).
free_port() {
    python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("no free port")
PY
}

# wait_port PORT [NAME]: until 127.0.0.1:PORT accepts (at most 10 s); fails at once
# when the process spawned as NAME has exited.
wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        [ -z "${2:-}" ] || alive "$2" || return 1
        sleep 0.05
    done
    return 1
}

# spawn NAME CMD...: starts CMD in the background, output to $T/logs/NAME.log, input
# from $SPAWN_STDIN (default /dev/null).
spawn() {
    local name=$1
    shift
    "$@" <"${SPAWN_STDIN:-/dev/null}" >"$T/logs/$name.log" 2>&1 &
    PROC[$name]=$!
    PROC_ORDER+=("$name")
}

# untrack PID: a helper of BG_PIDS has been reaped (its pid may be reused later).
untrack() {
    local p keep=()
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

alive() { [ -n "${PROC[$1]:-}" ] && kill -0 "${PROC[$1]}" 2>/dev/null; }

# stop NAME [grace_s]: SIGTERM, then SIGKILL after the grace (default 5 s).
stop() {
    local name=$1 grace=${2:-5} pid=${PROC[$1]:-} i
    [ -n "$pid" ] || return 0
    unset "PROC[$name]"
    if ! kill -TERM "$pid" 2>/dev/null; then # already gone: reap it
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    for i in "${BG_PIDS[@]}"; do kill "$i" 2>/dev/null || true; done
    for ((i = ${#PROC_ORDER[@]} - 1; i >= 0; i--)); do
        stop "${PROC_ORDER[i]}" 3
    done
    exec 7>&- 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "kept $T and $S"
    else
        rm -rf "$T" "$S"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# Resident set size / its high-water mark of a pid, in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU time (user+system) of a pid in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICKS=$(getconf CLK_TCK)
# Machine-wide "busy total" jiffies (all CPUs) from /proc/stat; busy excludes idle+iowait.
sys_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
# sys_busy "BEFORE" "AFTER": busy share of the whole machine in % of all CPUs.
sys_busy() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }'; }
# busy_us "BEFORE" "AFTER" N: machine-wide busy CPU time per item, in microseconds.
busy_us() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICKS" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 1e6 * (y[1] - x[1]) / t / n }'; }

now() { echo "$EPOCHREALTIME"; }
calc() { awk "BEGIN { printf \"%s\", $1 }" </dev/null; }   # calc 'expr' (awk syntax)
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf("%." d "f", v) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }

# row BENCH METRIC VALUE TARGET STATUS
row() { ROWS+=("$1|$2|$3|$4|$5"); }
note() { NOTES+=("$*"); }

# result FILE KEY: value of a "RESULT KEY VALUE" line printed by a wrk script.
result() { awk -v k="$2" '$1 == "RESULT" && $2 == k {print $3}' "$1"; }

start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$T/redis"
    spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$T/redis" \
        --save '' --appendonly no --daemonize no --protected-mode no --maxclients 10000 \
        --logfile "$T/redis/redis.log"
    wait_port "$REDIS_PORT" redis || die "redis-server did not start (see $T/redis/redis.log)"
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    die "redis-server does not answer"
}

# start_nginx: origin + callback sink, config generated from bench/nginx.conf.in.
start_nginx() {
    NGINX_PORT=$(free_port)
    local d=$T/nginx user="" temp=""
    mkdir -p "$d/tmp" "$S/www/files" "$S/www/slow"
    [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
    for m in client_body proxy fastcgi uwsgi scgi; do
        if [ $m = client_body ] || ! nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            temp+="${m}_temp_path $d/tmp/$m; "
        fi
    done
    sed -e "s|@DIR@|$d|g" -e "s|@WWW@|$S/www|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@USER@|$user|" \
        -e "s|@WORKERS@|${NGINX_WORKERS:-2}|" -e "s|@SLOW_RATE@|${SLOW_RATE:-8k}|" \
        -e "s|@TEMP_PATHS@|$temp|" bench/nginx.conf.in >"$d/nginx.conf"
    : >"$d/cb.log"
    : >"$d/cbr.log"
    spawn nginx nginx -p "$d" -c "$d/nginx.conf" -g "daemon off; pid $d/nginx.pid;"
    wait_port "$NGINX_PORT" nginx || die "nginx did not start (see $T/logs/nginx.log, $d/error.log)"
}

# Lines of the callback sink's log (nginx flushes it every 100 ms); cb_lines cbr: of
# the /cbr sink's.
cb_lines() { wc -l <"$T/nginx/${1:-cb}.log"; }

# Established client connections to the origin (processor side: destination port).
origin_conns() { ss -Htn state established "( dport = :$NGINX_PORT )" 2>/dev/null | wc -l; }

# post_jobs OUT PORT TOTAL URL_FMT NAGGR LIMIT CALLBACK PREFIX [RATE]: POSTs exactly
# TOTAL jobs with wrk + bench/post_jobs.lua (2 threads, $POST_CONNS connections, default
# 64; RATE: their aggr_rate) and returns as soon as all are answered (at most 60 s).
# Results: `result OUT created|...`.
post_jobs() {
    local out=$1 port=$2 marker=$T/post.$RANDOM i pid
    shift 2
    rm -f "$marker".*
    wrk -t2 -c"${POST_CONNS:-64}" -d60s -s bench/post_jobs.lua "http://127.0.0.1:$port" -- \
        "$1" 2 "$2" "$3" "$4" "$5" "$6" "$marker" "${7:-}" >"$out" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    for ((i = 0; i < 6000; i++)); do # 10 ms steps, at most 60 s
        [ -e "$marker.1" ] && [ -e "$marker.2" ] && break
        kill -0 "$pid" 2>/dev/null || break
        nap 0.01
    done
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    untrack "$pid"
}

# BENCH_PERF=1: `perf record -g` of a process during a measured phase, into
# $T/perf.NAME.data (use with BENCH_KEEP=1; `perf report -i ...`). No-op otherwise.
prof_start() {
    [ "${BENCH_PERF:-0}" = 1 ] || return 0
    perf record -q ${BENCH_PERF_OPTS:--g} -p "$1" -o "$T/perf.$2.data" >"$T/logs/perf.$2.log" 2>&1 &
    PERF_PID=$!
    BG_PIDS+=("$PERF_PID")
    sleep 0.2
}
prof_stop() {
    [ "${BENCH_PERF:-0}" = 1 ] && [ -n "${PERF_PID:-}" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    untrack "$PERF_PID"
    PERF_PID=""
}
