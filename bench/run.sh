#!/usr/bin/env bash
# `make bench`: the benchmarks of bench/README.md, self-contained on 127.0.0.1: its own
# redis-server, nginx (origin + callback sink) and Kafka mock on free ports, everything
# under temp dirs, all stopped and removed on exit.
#   api   1  API enqueue rate vs redis-benchmark SET (issue 2)
#   idem  1i API enqueue with an Idempotency-Key on every request vs without (issue 15)
#   e2e   2  5,000 downloads end to end vs nginx ceiling and aria2c (issue 3), 3 runs
#   split 2c the same with api, processor and notifier as 3 processes (informational)
#   disk  2b the same once with the files on the disk under $T (informational)
#   mem   3  processor memory per in-flight download (issue 3)
#   cb    4  callback throughput, HTTP sink and Kafka mock (issue 4)
#   scale 5  jobs/s with 1 and 3 processors against a slow origin (bench/scale.sh)
#   resume 6 a 200 MB download cut at 90% once vs an uninterrupted one (issue 16)
#   rate  7  aggr_rate 50 next to unlimited aggregations: spacing, no slowdown, idle CPU
#            (issue 14)
#   control 8 Redis bytes per remembered job, a page of 50 of 100,000, purge (issue 15)
# Environment: BENCH="api e2e" runs a subset; E2E_RUNS (3); POST_CONNS (64, wrk
# connections posting the jobs of 2 and 3); BENCH_KEEP=1 keeps the temp dirs (logs,
# configs, wrk outputs, Redis commandstats); BENCH_TMPDIR: where the temp dir goes
# ($TMPDIR or /tmp); BENCH_STORAGE: where downloaded and origin files go (/dev/shm);
# BENCH_PERF=1: `perf record` of the service during the measured phases (options in
# BENCH_PERF_OPTS, default -g); BENCH_BIN: the downloader binary to measure (default
# $BUILD/downloader; a wrapper script that execs it works too); E2E_MAXC: the
# processor's max_concurrency in 2/2b/2c (1024).
# Prints a summary table and writes it to bench/results/latest.txt. Exit status 0 even
# when a target is missed (the table says so); non-zero when a benchmark cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BENCH_BIN:-$PWD/$BUILD/downloader}
KAFKA_MOCK=$PWD/$BUILD/test/tools/kafka_mock
FLOOR=$PWD/$BUILD/bench/floor
BENCHES=${BENCH:-api idem e2e split disk mem cb scale resume rate control}

DEPS_EXTRA="wrk nginx-light aria2 redis-tools" ./.ci/deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
[ -x "$BIN" ] || die "no $BIN: run make first"

# Thousands of sockets and files at once (benchmark 3): raise the soft fd limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10000 ] ||
    log "warning: fd limit $(ulimit -n) is low for benchmark 3"
export DOWNLOADER_LOG_LEVEL=${DOWNLOADER_LOG_LEVEL:-info}

start_redis
start_nginx
log "tmp $T, files $S, redis 127.0.0.1:$REDIS_PORT, nginx 127.0.0.1:$NGINX_PORT"

# 5,000 distinct 4 KiB files f0000..f4999 (benchmark 2) and one 160 KiB file for the
# slow endpoint (benchmark 3: 160 KiB at 8 KiB/s = 20 s per download).
E2E_N=5000
(cd "$S/www/files" && head -c $((E2E_N * 4096)) /dev/urandom | split -b 4096 -a 4 -d - f)
head -c $((160 * 1024)) /dev/urandom >"$S/www/slow/s"

# config JSON pieces
redis_cfg() { printf '"redis": {"addr": "127.0.0.1:%s"}' "$REDIS_PORT"; }

# run_service NAME COMPONENT CONFIG [PORT]: starts `downloader COMPONENT`.
run_service() {
    local name=$1 comp=$2 cfg=$3 port=${4:-}
    if [ -n "$port" ]; then
        spawn "$name" "$BIN" "$comp" -c "$cfg" --host 127.0.0.1 -p "$port"
        wait_port "$port" "$name" || die "$name did not start (see $T/logs/$name.log)"
    else
        spawn "$name" "$BIN" "$comp" -c "$cfg"
        sleep 0.3
        alive "$name" || die "$name did not start (see $T/logs/$name.log)"
    fi
}

# ------------------------------------------------------------------------------------
# 1. API enqueue
# ------------------------------------------------------------------------------------
bench_api() {
    log "1/4 API enqueue: wrk -t2 -c64 -d10s POST /download over 100 aggregations"
    rcli flushall >/dev/null
    local port cfg=$T/api.json out=$T/wrk_api.txt
    port=$(free_port)
    printf '{%s, "api": {}}\n' "$(redis_cfg)" >"$cfg"
    run_service api api "$cfg" "$port"
    # warm-up (connections, allocator, script cache), then start from an empty Redis
    wrk -t2 -c64 -d1s -s bench/enqueue.lua "http://127.0.0.1:$port" -- 100 5 >/dev/null
    sleep 0.2 # requests still in flight when wrk stopped
    rcli flushall >/dev/null
    rcli config resetstat >/dev/null
    local c0 r0 c1 r1
    c0=$(cpu_ticks "${PROC[api]}")
    r0=$(cpu_ticks "${PROC[redis]}")
    wrk -t2 -c64 -d10s --latency -s bench/enqueue.lua "http://127.0.0.1:$port" -- 100 5 >"$out"
    c1=$(cpu_ticks "${PROC[api]}")
    r1=$(cpu_ticks "${PROC[redis]}")
    rcli info commandstats >"$T/api_commandstats.txt"
    local created non201 sockerr dur p50 p99 rate queued unans
    created=$(result "$out" created)
    unans=$(result "$out" unanswered)
    non201=$(result "$out" non201)
    sockerr=$(result "$out" socket_errors)
    dur=$(result "$out" duration_us)
    p50=$(result "$out" p50_us)
    p99=$(result "$out" p99_us)
    rate=$(calc "$created / ($dur / 1e6)")
    sleep 0.2
    queued=$(rcli eval "local s = 0 for i = 0, 99 do s = s + redis.call('LLEN', 'q:a' .. i) end return s" 0)
    local api_cpu redis_cpu
    api_cpu=$(calc "100 * ($c1 - $c0) / $TICKS / ($dur / 1e6)")
    redis_cpu=$(calc "100 * ($r1 - $r0) / $TICKS / ($dur / 1e6)")
    stop api
    log "   redis-benchmark -t set -n 200000 -c 50 -P 1 on the same Redis"
    local set_rate
    set_rate=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set -n 200000 -c 50 -P 1 -q 2>/dev/null |
        tr '\r' '\n' | awk '/^SET:/ {v = $2} END {print v + 0}')
    local ratio
    ratio=$(calc "100 * $rate / $set_rate")
    local B="1 API enqueue"
    row "$B" "enqueues/s (201s / wrk time)" "$(fmt "$rate")" ">= 25000" "$(verdict ge "$rate" 25000)"
    row "$B" "latency p50" "$(fmt "$(calc "$p50 / 1000")" 2) ms" "" ""
    row "$B" "latency p99" "$(fmt "$(calc "$p99 / 1000")" 2) ms" "< 10 ms" "$(verdict lt "$p99" 10000)"
    row "$B" "errors (non-201 + socket)" "$((non201 + sockerr))" "0" "$(verdict [ $((non201 + sockerr)) -eq 0 ])"
    row "$B" "redis-benchmark SET (ceiling)" "$(fmt "$set_rate") req/s" "" ""
    row "$B" "enqueue rate / SET rate" "$(fmt "$ratio" 1) %" ">= 40 %" "$(verdict ge "$ratio" 40)"
    # wrk stops with requests in flight (unanswered): the API may still enqueue them
    row "$B" "jobs in Redis (sum LLEN q:a*)" "$queued" "201s ($created) + 0..$unans" \
        "$(verdict [ "$queued" -ge "$created" -a $((queued - created)) -le "$unans" ])"
    row "$B" "CPU: downloader api / redis" "$(fmt "$api_cpu") % / $(fmt "$redis_cpu") %" "" ""
    local evalsha
    evalsha=$(awk -F'[:,=]' '/^cmdstat_evalsha:/ {print $7}' "$T/api_commandstats.txt")
    if [ -n "$evalsha" ]; then note "1: Redis EVALSHA (enqueue.lua) costs $evalsha us per call inside Redis"; fi
}

# ------------------------------------------------------------------------------------
# 1i. API enqueue with an Idempotency-Key
# ------------------------------------------------------------------------------------
# idem_run PORT MODE RUN: one 3 s wrk run of enqueue.lua from an empty Redis, MODE
# "plain" or "idem". Sets IR_RATE (201s/s), IR_P99 (us), IR_ERR (non-201 + socket
# errors + replayed answers), IR_CREATED, IR_UNANS, IR_CPU / IR_ACPU / IR_RCPU (CPU
# time per 201 of the api and Redis together / of the api / of Redis, us) and IR_MEM
# (Redis used_memory growth per 201, bytes).
idem_run() {
    local port=$1 mode=$2 run=$3 out=$T/wrk_idem_$2_$3.txt m0 m1 a0 a1 r0 r1
    rcli flushall >/dev/null
    m0=$(rcli info memory | awk -F: '/^used_memory:/ {print $2 + 0}')
    a0=$(cpu_ticks "${PROC[api]}")
    r0=$(cpu_ticks "${PROC[redis]}")
    wrk -t2 -c64 -d3s --latency -s bench/enqueue.lua "http://127.0.0.1:$port" -- 100 5 "$mode" "$run" >"$out"
    a1=$(cpu_ticks "${PROC[api]}")
    r1=$(cpu_ticks "${PROC[redis]}")
    nap 0.2 # requests still in flight when wrk stopped
    m1=$(rcli info memory | awk -F: '/^used_memory:/ {print $2 + 0}')
    IR_CREATED=$(result "$out" created)
    IR_UNANS=$(result "$out" unanswered)
    IR_RATE=$(calc "$IR_CREATED / ($(result "$out" duration_us) / 1e6)")
    IR_P99=$(result "$out" p99_us)
    IR_ERR=$(($(result "$out" non201) + $(result "$out" socket_errors) + $(result "$out" replayed)))
    IR_ACPU=$(calc "1e6 * ($a1 - $a0) / $TICKS / $IR_CREATED")
    IR_RCPU=$(calc "1e6 * ($r1 - $r0) / $TICKS / $IR_CREATED")
    IR_CPU=$(calc "$IR_ACPU + $IR_RCPU")
    IR_MEM=$(calc "($m1 - $m0) / $IR_CREATED")
}

# Plain and keyed runs alternate (IDEM_PAIRS pairs, default 5) on one API process, so
# that the drift of this shared VM hits both alike; the verdict is the median of the
# pairs' rate ratios. The CPU time per enqueue (api + Redis) is steadier than the rates.
bench_idem() {
    local pairs=${IDEM_PAIRS:-5}
    log "1i/4 API enqueue with Idempotency-Key: $pairs x (3 s plain, 3 s keyed), wrk -t2 -c64"
    local port cfg=$T/api_idem.json
    port=$(free_port)
    printf '{%s, "api": {}}\n' "$(redis_cfg)" >"$cfg"
    run_service api api "$cfg" "$port"
    wrk -t2 -c64 -d1s -s bench/enqueue.lua "http://127.0.0.1:$port" -- 100 5 idem 999 >/dev/null
    local i err=0 recs created unans
    local plain=() keyed=() ratios=() cpu_p=() cpu_k=() p99_p=() p99_k=() mem_p=() mem_k=()
    local api_p=() api_k=() red_p=() red_k=()
    for ((i = 1; i <= pairs; i++)); do
        idem_run "$port" plain "$i"
        plain+=("$IR_RATE") cpu_p+=("$IR_CPU") p99_p+=("$IR_P99") mem_p+=("$IR_MEM")
        api_p+=("$IR_ACPU") red_p+=("$IR_RCPU")
        err=$((err + IR_ERR))
        idem_run "$port" idem "$i"
        keyed+=("$IR_RATE") cpu_k+=("$IR_CPU") p99_k+=("$IR_P99") mem_k+=("$IR_MEM")
        api_k+=("$IR_ACPU") red_k+=("$IR_RCPU")
        ratios+=("$(calc "100 * $IR_RATE / ${plain[-1]}")")
        err=$((err + IR_ERR))
        log "   pair $i: plain $(fmt "${plain[-1]}")/s ($(fmt "${cpu_p[-1]}") us CPU each)," \
            "keyed $(fmt "$IR_RATE")/s ($(fmt "$IR_CPU") us)"
    done
    # the last keyed run: one record per job
    recs=$(rcli --scan --pattern 'idem:*' | wc -l)
    created=$IR_CREATED
    unans=$IR_UNANS
    stop api
    local ratio cp ck
    ratio=$(median "${ratios[@]}")
    cp=$(median "${cpu_p[@]}")
    ck=$(median "${cpu_k[@]}")
    local B="1i API enqueue + key"
    row "$B" "plain enqueues/s (median of $pairs x 3 s)" "$(fmt "$(median "${plain[@]}")")" "" ""
    row "$B" "keyed enqueues/s (median of $pairs x 3 s)" "$(fmt "$(median "${keyed[@]}")")" "" ""
    row "$B" "keyed / plain rate (median of the pairs)" "$(fmt "$ratio" 1) %" ">= 80 %" "$(verdict ge "$ratio" 80)"
    row "$B" "CPU per enqueue, api + Redis: plain / keyed" "$(fmt "$cp") / $(fmt "$ck") us" "" ""
    row "$B" "  of which api: plain / keyed" "$(fmt "$(median "${api_p[@]}")") / $(fmt "$(median "${api_k[@]}")") us" "" ""
    row "$B" "  of which Redis: plain / keyed" "$(fmt "$(median "${red_p[@]}")") / $(fmt "$(median "${red_k[@]}")") us" "" ""
    row "$B" "latency p99 (median): plain / keyed" \
        "$(fmt "$(calc "$(median "${p99_p[@]}") / 1000")" 2) / $(fmt "$(calc "$(median "${p99_k[@]}") / 1000")" 2) ms" "" ""
    row "$B" "errors (non-201 + socket + replayed)" "$err" "0" "$(verdict [ "$err" -eq 0 ])"
    row "$B" "idem:* records after the last run" "$recs" "201s ($created) + 0..$unans" \
        "$(verdict [ "$recs" -ge "$created" -a $((recs - created)) -le "$unans" ])"
    row "$B" "Redis memory per job: plain / keyed" "$(fmt "$(median "${mem_p[@]}")") / $(fmt "$(median "${mem_k[@]}")") B" "" ""
}

# ------------------------------------------------------------------------------------
# 2. End to end
# ------------------------------------------------------------------------------------
# e2e_once DIR TAG [MODE]: one end-to-end run with the stored files under DIR; MODE
# "all" (default): `downloader all`; "split": `downloader api`, `processor` and
# `notifier` as three processes (the CPU figures are then their sums).
# Sets E2E_CREATED, E2E_CB (callbacks seen), E2E_FILES, E2E_LEFT (job hashes left),
# E2E_POST (s), E2E_TIME (s, first POST -> last callback), E2E_RATE (jobs/s), E2E_CPU
# (downloader %), E2E_LOOP (its loop thread %), E2E_RCPU (redis %), E2E_SYS (machine %),
# E2E_DLUS / E2E_RUS (CPU time of the downloader / redis per job, us).
# e2e_config FILE DIR PORT: the service config of benchmarks 2 and 7 (files under DIR,
# API on PORT).
e2e_config() {
    local d=$2 port=$3
    cat >"$1" <<JSON
{ $(redis_cfg),
  "api": {},
  "processor": {"storage_dir": "$d/tmp", "filestorage": {"type": "filesystem", "rootdir": "$d/files"},
                "download_url": "http://127.0.0.1:$port/files", "max_concurrency": ${E2E_MAXC:-1024},
                "stats_interval": 1000, "shutdown_grace": "1s"},
  "notifier": {"concurrency": 256, "deletion_interval": 10080, "stats_interval": 1000,
               "shutdown_grace": "1s"},
  "backends": {"http": {"timeout": 30}} }
JSON
}

e2e_once() {
    local d=$1 tag=$2 mode=${3:-all}
    rcli flushall >/dev/null
    local port cfg=$d/e2e.json
    port=$(free_port)
    rm -rf "$d/tmp" "$d/files"
    mkdir -p "$d/tmp" "$d/files"
    e2e_config "$cfg" "$d" "$port"
    local names=(all) n
    [ "$mode" = split ] && names=(api processor notifier)
    for n in "${names[@]}"; do
        if [ "$n" = all ] || [ "$n" = api ]; then run_service "$n" "$n" "$cfg" "$port"; else run_service "$n" "$n" "$cfg"; fi
    done
    sleep 0.5 # processor and notifier subscribed
    local pid=${PROC[${names[0]}]} base t0 t_posted out=$T/wrk_e2e.$tag.txt c0 c1 r0 r1 s0 s1 m0 m1
    base=$(cb_lines)
    c0=$(procs_cpu all "${names[@]}")
    m0=$(procs_cpu main "${names[@]}")
    r0=$(cpu_ticks "${PROC[redis]}")
    prof_start "$pid" "e2e.$tag"
    s0=$(sys_ticks)
    t0=$(now)
    post_jobs "$out" "$port" "$E2E_N" "http://127.0.0.1:$NGINX_PORT/files/f%04d" 20 50 \
        "http://127.0.0.1:$NGINX_PORT/cb" e
    t_posted=$(now)
    local i n=0
    E2E_CREATED=$(result "$out" created)
    for ((i = 0; i < 1200; i++)); do # at most 60 s
        n=$(($(cb_lines) - base))
        [ "$n" -ge "$E2E_CREATED" ] && break
        nap 0.05
    done
    s1=$(sys_ticks)
    prof_stop
    c1=$(procs_cpu all "${names[@]}")
    m1=$(procs_cpu main "${names[@]}")
    r1=$(cpu_ticks "${PROC[redis]}")
    local last
    last=$(tail -n +"$((base + 1))" "$T/nginx/cb.log" | awk '$1 > m {m = $1} END {printf "%.3f", m}')
    E2E_CB=$n
    E2E_POST=$(calc "$t_posted - $t0")
    E2E_TIME=$(calc "$last - $t0")
    E2E_RATE=$(calc "$n / $E2E_TIME")
    E2E_FILES=$(find "$d/files" -type f | wc -l)
    # job hashes not yet delivered (delivered ones stay notifier.history as history)
    E2E_LEFT=$(rcli eval "local n = 0 for _, k in ipairs(redis.call('KEYS', 'job:*')) do if redis.call('HGET', k, 'CallbackState') ~= 'Delivered' then n = n + 1 end end return n" 0)
    E2E_CPU=$(calc "100 * ($c1 - $c0) / $TICKS / $E2E_TIME")
    E2E_LOOP=$(calc "100 * ($m1 - $m0) / $TICKS / $E2E_TIME")
    E2E_RCPU=$(calc "100 * ($r1 - $r0) / $TICKS / $E2E_TIME")
    E2E_DLUS=$(calc "1e6 * ($c1 - $c0) / $TICKS / $n")
    E2E_RUS=$(calc "1e6 * ($r1 - $r0) / $TICKS / $n")
    E2E_SYS=$(sys_busy "$s0" "$s1")
    E2E_MUS=$(busy_us "$s0" "$s1" "$n")
    rcli info commandstats >"$T/e2e.$tag.commandstats.txt"
    for n in "${names[@]}"; do stop "$n"; done
}

# procs_cpu WHAT NAME...: CPU ticks of the named services, WHAT "all" their threads or
# "main" their loop threads only.
procs_cpu() {
    local what=$1 n p t=0
    shift
    for n in "$@"; do
        p=${PROC[$n]}
        [ "$what" = main ] && p=$p/task/$p
        t=$((t + $(cpu_ticks "$p")))
    done
    echo "$t"
}

# aria2_once DIR: aria2c -j 50 fetches the same URLs into DIR/aria2. Sets ARIA_FILES,
# ARIA_TIME (s), ARIA_RATE (files/s).
aria2_once() {
    local ad=$1/aria2 list=$T/aria2.list ta tb i
    rm -rf "$ad"
    mkdir -p "$ad"
    for ((i = 0; i < E2E_N; i++)); do printf 'http://127.0.0.1:%s/files/f%04d\n' "$NGINX_PORT" "$i"; done >"$list"
    local s0 s1
    s0=$(sys_ticks)
    ta=$(now)
    timeout 120 aria2c -i "$list" -d "$ad" -j 50 --max-connection-per-server=1 --split=1 \
        --allow-overwrite=true --auto-file-renaming=false --file-allocation=none \
        --enable-http-keep-alive=true --summary-interval=0 --console-log-level=error \
        --download-result=hide --quiet=true >"$T/logs/aria2.log" 2>&1 || log "aria2c failed: see $T/logs/aria2.log"
    tb=$(now)
    s1=$(sys_ticks)
    ARIA_FILES=$(find "$ad" -type f ! -name '*.aria2' | wc -l)
    ARIA_MUS=$(busy_us "$s0" "$s1" "$ARIA_FILES")
    ARIA_TIME=$(calc "$tb - $ta")
    ARIA_RATE=$(calc "$ARIA_FILES / $ARIA_TIME")
    rm -rf "$ad"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# e2e_bench DIR LABEL RUNS JUDGED [MODE]: RUNS x (e2e_once + aria2_once), rows with
# medians.
# JUDGED=1: rows carry PASS/FAIL; 0: informational.
e2e_bench() {
    local d=$1 B=$2 runs=$3 judged=$4 mode=${5:-all} r rates=() arates=() ok=1 posts=() cpu="" allr="" alla=""
    local dlus=() rus=() mus=() amus=() ratios=() allx=""
    for ((r = 1; r <= runs; r++)); do
        log "   run $r/$runs: downloader $mode, then aria2c"
        e2e_once "$d" "$judged.$r" "$mode"
        [ "$E2E_CREATED" -eq "$E2E_N" ] && [ "$E2E_CB" -ge "$E2E_N" ] && [ "$E2E_FILES" -eq "$E2E_N" ] &&
            [ "$E2E_LEFT" -eq 0 ] || ok=0
        rates+=("$E2E_RATE")
        posts+=("$E2E_POST")
        dlus+=("$E2E_DLUS")
        rus+=("$E2E_RUS")
        mus+=("$E2E_MUS")
        allr+="${allr:+ / }$(fmt "$E2E_RATE")"
        [ "$r" -eq 1 ] && cpu="$(fmt "$E2E_CPU") % ($(fmt "$E2E_LOOP") %) / $(fmt "$E2E_RCPU") % / $E2E_SYS %"
        aria2_once "$d"
        [ "$ARIA_FILES" -eq "$E2E_N" ] || ok=0
        arates+=("$ARIA_RATE")
        amus+=("$ARIA_MUS")
        alla+="${alla:+ / }$(fmt "$ARIA_RATE")"
        # each run against the aria2c run right after it: this VM's speed drifts by
        # tens of percent within minutes, a run and its aria2c run share the phase
        ratios+=("$(calc "$E2E_RATE / $ARIA_RATE")")
        allx+="${allx:+ / }$(fmt "${ratios[-1]}" 2)"
    done
    local rate arate ratio
    rate=$(median "${rates[@]}")
    arate=$(median "${arates[@]}")
    ratio=$(median "${ratios[@]}")
    j() { if [ "$judged" = 1 ]; then verdict "$@"; fi; }
    row "$B" "all jobs posted, called back, stored, gone" "$([ $ok = 1 ] && echo yes || echo NO)" "yes" "$(j [ $ok = 1 ])"
    row "$B" "posting time, median (wrk, ${POST_CONNS:-64} conns)" "$(fmt "$(median "${posts[@]}")" 3) s" "" ""
    row "$B" "jobs/s first POST -> last callback, median" "$(fmt "$rate")" ">= 2000" "$(j ge "$rate" 2000)"
    row "$B" "  runs" "$allr" "" ""
    row "$B" "aria2c -j 50 files/s, median" "$(fmt "$arate")" "" ""
    row "$B" "  runs" "$alla" "" ""
    row "$B" "end to end / aria2c, median of the runs" "$(fmt "$ratio" 2) x" "> 1" "$(j ge "$ratio" 1.0001)"
    row "$B" "  runs" "$allx" "" ""
    row "$B" "CPU run 1: dl (loop) / redis / machine" "$cpu" "" ""
    row "$B" "CPU per job, median: downloader / redis" \
        "$(fmt "$(median "${dlus[@]}")") / $(fmt "$(median "${rus[@]}")") us" "" ""
    row "$B" "machine CPU per job / per aria2c file, medians" \
        "$(median "${mus[@]}") / $(median "${amus[@]}") us" "" ""
}

bench_e2e() {
    log "2/4 end to end: $E2E_N downloads of 4 KiB, 20 aggregations x limit 50, HTTP callbacks"
    log "   ceiling: wrk GET of the same files from nginx"
    wrk -t2 -c64 -d5s -s bench/get_files.lua "http://127.0.0.1:$NGINX_PORT" -- \
        "$E2E_N" "/files/f%04d" >"$T/wrk_ceiling.txt"
    local ceiling
    ceiling=$(awk '/^Requests\/sec:/ {print $2}' "$T/wrk_ceiling.txt")
    row "2 end to end" "nginx GET ceiling (wrk, 64 conns)" "$(fmt "$ceiling") req/s" "" ""
    mkdir -p "$S/e2e"
    e2e_bench "$S/e2e" "2 end to end" "${E2E_RUNS:-3}" 1
}

# Benchmark 2 with the stored files on the disk holding $T (fsync, inode allocation):
# informational, the figures depend on that filesystem more than on the service.
bench_disk() {
    local fs
    fs=$(df -PT "$T" | awk 'NR == 2 {print $2}')
    log "2b end to end with the files on $fs ($T)"
    mkdir -p "$T/e2e"
    e2e_bench "$T/e2e" "2b e2e, files on $fs" 1 0
}

# Benchmark 2 with the three components as separate processes (the reference's
# deployment; each has its own loop and Redis connection): informational.
bench_split() {
    log "2c end to end, api + processor + notifier as three processes"
    mkdir -p "$S/e2e"
    e2e_bench "$S/e2e" "2c e2e, 3 processes" "${E2E_RUNS:-3}" 0 split
}

# ------------------------------------------------------------------------------------
# 3. Memory per in-flight download
# ------------------------------------------------------------------------------------
bench_mem() {
    local N=2000
    log "3/4 memory: $N downloads in flight (40 aggregations x limit 50, 160 KiB at 8 KiB/s)"
    rcli flushall >/dev/null
    local aport cfg=$T/mem.json d=$S/mem
    aport=$(free_port)
    mkdir -p "$d/tmp" "$d/files"
    cat >"$cfg" <<JSON
{ $(redis_cfg),
  "api": {},
  "processor": {"storage_dir": "$d/tmp", "filestorage": {"type": "filesystem", "rootdir": "$d/files"},
                "download_url": "http://127.0.0.1:$aport/files", "max_concurrency": 2500,
                "stats_interval": 1000, "shutdown_grace": "1s"} }
JSON
    run_service mem_api api "$cfg" "$aport"
    run_service mem_proc processor "$cfg"
    sleep 1
    local pid=${PROC[mem_proc]} base
    base=$(rss_kib "$pid")
    # callbacks are never sent: no notifier runs
    post_jobs "$T/wrk_mem.txt" "$aport" "$N" "http://127.0.0.1:$NGINX_PORT/slow/s?i=%d" 40 50 \
        "http://127.0.0.1:$NGINX_PORT/cb" m
    local i inflight=0 conns=0 full_at=-1 peak_seen=0 rss maxin=0 maxconn=0
    for ((i = 0; i < 150; i++)); do # 100 ms steps, at most 15 s
        rss=$(rss_kib "$pid")
        [ "$rss" -gt "$peak_seen" ] && peak_seen=$rss
        inflight=$(rcli zcard leases)
        conns=$(origin_conns)
        [ "$inflight" -gt "$maxin" ] && maxin=$inflight
        [ "$conns" -gt "$maxconn" ] && maxconn=$conns
        if [ "$full_at" -lt 0 ] && [ "$inflight" -ge "$N" ] && [ "$conns" -ge "$N" ]; then
            full_at=$i
        fi
        [ "$full_at" -ge 0 ] && [ $((i - full_at)) -ge 40 ] && break # 4 s at full load
        sleep 0.1
    done
    local hwm per
    hwm=$(hwm_kib "$pid")
    [ "$hwm" -gt "$peak_seen" ] || hwm=$peak_seen
    per=$(calc "($hwm - $base) / $N")
    local agg_inflight
    agg_inflight=$(curl -s "http://127.0.0.1:$aport/dashboard/aggregations" |
        python3 -c 'import json,sys; print(sum(a.get("inflight", 0) for a in json.load(sys.stdin)))' 2>/dev/null || echo "?")
    local B="3 memory"
    row "$B" "in flight: leases / origin conns (max)" "$maxin / $maxconn" ">= $N" \
        "$(verdict [ "$maxin" -ge "$N" -a "$maxconn" -ge "$N" ])"
    row "$B" "dashboard inflight sum at the end" "$agg_inflight" "" ""
    row "$B" "processor RSS baseline" "$(fmt "$(calc "$base / 1024")" 1) MiB" "" ""
    row "$B" "processor RSS peak (VmHWM)" "$(fmt "$(calc "$hwm / 1024")" 1) MiB" "" ""
    row "$B" "(peak - baseline) / $N" "$(fmt "$per" 1) KiB" "<= 64 KiB" \
        "$(verdict awk -v a="$per" -v f="$full_at" 'BEGIN { exit !(f >= 0 && a <= 64) }')"
    stop mem_proc 3
    stop mem_api
}

# ------------------------------------------------------------------------------------
# 4. Callback throughput
# ------------------------------------------------------------------------------------
# Poll script: callbacks not yet delivered = queued + leased + delayed.
PENDING_LUA="return redis.call('LLEN', 'cb:q') + redis.call('ZCARD', 'cb:leases') + redis.call('ZCARD', 'cb:delayed')"
# Remaining job hashes of the prepared ids (run once at the end).
LEFT_LUA="local n = 0 for i = 1, tonumber(ARGV[1]) do local k = 'job:' .. string.format('%s%09d', ARGV[2], i) if redis.call('EXISTS', k) == 1 and redis.call('HGET', k, 'CallbackState') ~= 'Delivered' then n = n + 1 end end return n"

# cb_run KIND CFG N PREFIX: starts the notifier and times until every callback is
# delivered (20 ms polls of PENDING_LUA). Sets CB_TOTAL (s from process start to all
# delivered), CB_FIRST (s from start to the first recorded delivery), CB_STEADY (rate
# from the first delivery to the end: callbacks still pending at the first delivery /
# time) and CB_LEFT (job hashes left).
cb_run() {
    local kind=$1 cfg=$2 N=$3 prefix=$4 t0 tfirst="" pfirst=0 tdone="" p pp
    exec 8< <(exec redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -r 3000 -i 0.02 eval "$PENDING_LUA" 0) # at most 60 s
    pp=$!
    BG_PIDS+=("$pp")
    read -r -u 8 p || die "poll failed"
    [ "$p" -eq "$N" ] || die "expected $N ready callbacks, found $p"
    t0=$(now)
    spawn "cb_$kind" "$BIN" notifier -c "$cfg"
    prof_start "${PROC[cb_$kind]}" "cb_$kind"
    while read -r -u 8 p; do
        if [ -z "$tfirst" ] && [ "$p" -lt "$N" ]; then
            tfirst=$(now)
            pfirst=$p
        fi
        if [ "$p" -eq 0 ]; then
            tdone=$(now)
            break
        fi
    done
    prof_stop
    kill "$pp" 2>/dev/null || true
    exec 8<&-
    wait "$pp" 2>/dev/null || true
    untrack "$pp"
    [ -n "$tdone" ] || { log "notifier ($kind) did not finish: ${p:-?} left"; tdone=$(now); }
    CB_TOTAL=$(calc "$tdone - $t0")
    CB_FIRST=$(calc "${tfirst:-$tdone} - $t0")
    CB_STEADY=$(calc "$pfirst / ($tdone - ${tfirst:-$t0} + 1e-9)")
    CB_LEFT=$(rcli eval "$LEFT_LUA" 0 "$N" "$prefix")
    rcli info commandstats >"$T/cb_$kind.commandstats.txt"
    stop "cb_$kind"
}

# cb_rows LABEL TARGET: the rows of one cb_run.
cb_rows() {
    local B="4 callbacks" k=$1 target=$2
    row "$B" "$k: time to first delivery after start" "$(fmt "$CB_FIRST" 3) s" "" ""
    row "$B" "$k: deliveries/s (first delivery -> all)" "$(fmt "$CB_STEADY")" ">= $target" "$(verdict ge "$CB_STEADY" "$target")"
    row "$B" "$k: deliveries/s incl. start ($(fmt "$CB_TOTAL" 3) s)" "$(fmt "$(calc "$N / $CB_TOTAL")")" "" ""
}

bench_cb() {
    local N=10000 dlurl="http://127.0.0.1:1/files"
    local B="4 callbacks"
    log "4/4 callbacks: $N ready callbacks to the nginx sink (HTTP)"
    rcli flushall >/dev/null
    local cfg=$T/cb_http.json base
    cat >"$cfg" <<JSON
{ $(redis_cfg),
  "notifier": {"concurrency": 256, "deletion_interval": 10080, "stats_interval": 1000,
               "shutdown_grace": "1s"},
  "backends": {"http": {"timeout": 30}} }
JSON
    rcli eval "$(cat bench/prepare_callbacks.lua)" 0 "$N" cbhtt http \
        "http://127.0.0.1:$NGINX_PORT/cb" "$dlurl" >/dev/null
    base=$(cb_lines)
    cb_run http "$cfg" "$N" cbhtt
    sleep 0.3 # sink log flush
    local got=$(($(cb_lines) - base))
    row "$B" "HTTP: delivered / job hashes left / sink POSTs" "$((N - CB_LEFT)) / $CB_LEFT / $got" "$N / 0 / $N" \
        "$(verdict [ "$CB_LEFT" -eq 0 -a "$got" -ge "$N" ])"
    cb_rows HTTP 5000

    log "   $N ready callbacks to the Kafka mock"
    [ -x "$KAFKA_MOCK" ] || die "no $KAFKA_MOCK (make $BUILD/test/tools/kafka_mock)"
    rcli flushall >/dev/null
    mkfifo "$T/kafka.in"
    exec 7<>"$T/kafka.in" # keeps the mock's stdin open until cleanup
    SPAWN_STDIN=$T/kafka.in spawn kafka "$KAFKA_MOCK" --topic bench:4
    local i boot=""
    for ((i = 0; i < 200; i++)); do
        boot=$(sed -n 's/^BOOTSTRAP=//p' "$T/logs/kafka.log")
        [ -n "$boot" ] && break
        sleep 0.05
    done
    [ -n "$boot" ] || die "kafka_mock printed no BOOTSTRAP= line"
    cfg=$T/cb_kafka.json
    # Producer settings: see bench/README.md ("Kafka producer settings").
    cat >"$cfg" <<JSON
{ $(redis_cfg),
  "notifier": {"concurrency": 2048, "deletion_interval": 10080, "stats_interval": 1000,
               "shutdown_grace": "1s"},
  "backends": {"kafka": {"bootstrap.servers": "$boot", "linger.ms": 5, "acks": "all",
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 100000,
                         "compression.codec": "none", "socket.nagle.disable": true}} }
JSON
    rcli eval "$(cat bench/prepare_callbacks.lua)" 0 "$N" cbkaf kafka bench "$dlurl" >/dev/null
    cb_run kafka "$cfg" "$N" cbkaf
    row "$B" "Kafka: delivered / job hashes left" "$((N - CB_LEFT)) / $CB_LEFT" "$N / 0" \
        "$(verdict [ "$CB_LEFT" -eq 0 ])"
    cb_rows Kafka 20000
    if ge "$CB_FIRST" 0.5; then
        note "4: the first Kafka delivery of a fresh notifier came after $(fmt "$CB_FIRST" 2) s: librdkafka looks up" \
            "a topic it has not seen before on its 1 s topic scan (librdkafka issue #3202)"
    fi
    stop kafka
}

# ------------------------------------------------------------------------------------
# 6. Resume: a 200 MB file cut at 90% once, against an uninterrupted download
# ------------------------------------------------------------------------------------
# resume_once TAG QUERY: downloads /data/$RESUME_SIZE?QUERY&aggr=TAG through `downloader
# all`; sets RESUME_S (POST -> file stored, polled every 10 ms), RESUME_BYTES (body
# bytes the origin sent for it) and RESUME_OK (1: stored with the whole size).
resume_once() {
    local tag=$1 query=$2 id t0 f i
    t0=$(now)
    id=$(curl -fsS -X POST "http://127.0.0.1:$RESUME_API/download" -d \
        "{\"url\":\"http://127.0.0.1:$RESUME_ORIGIN/data/$RESUME_SIZE?$query&aggr=$tag\",\"aggr_id\":\"$tag\",\"aggr_limit\":1,\"callback_url\":\"http://127.0.0.1:$RESUME_ORIGIN/callback/$tag\"}" |
        sed 's/.*"id":"\([^"]*\)".*/\1/')
    f=$RESUME_DIR/files/${id:0:3}/$id
    for ((i = 0; i < 12000; i++)); do # 10 ms steps, at most 120 s; the rename is atomic
        [ -e "$f" ] && break
        nap 0.01
    done
    RESUME_S=$(calc "$(now) - $t0")
    RESUME_BYTES=$(curl -fsS "http://127.0.0.1:$RESUME_ORIGIN/_served" |
        python3 -c "import json, sys; print(json.load(sys.stdin)['$tag']['bytes'])")
    RESUME_OK=0
    [ -e "$f" ] && [ "$(stat -c %s "$f")" = "$RESUME_SIZE" ] && RESUME_OK=1
    rm -f "$f"
}

bench_resume() {
    local B="6 resume" cfg plain_s plain_bytes ok
    RESUME_SIZE=200000000 RESUME_DIR=$S/resume
    log "6 resume: $RESUME_SIZE bytes cut at 90% once, vs uninterrupted"
    rcli flushall >/dev/null
    mkdir -p "$RESUME_DIR/tmp" "$RESUME_DIR/files"
    RESUME_ORIGIN=$(free_port)
    spawn origin python3 test/origin.py --port "$RESUME_ORIGIN"
    wait_port "$RESUME_ORIGIN" origin || die "test origin did not start"
    RESUME_API=$(free_port)
    cfg=$RESUME_DIR/resume.json
    cat >"$cfg" <<JSON
{ $(redis_cfg),
  "api": {},
  "processor": {"storage_dir": "$RESUME_DIR/tmp", "filestorage": {"type": "filesystem", "rootdir": "$RESUME_DIR/files"},
                "download_url": "http://127.0.0.1:$RESUME_API/files", "retry_base": "100ms",
                "shutdown_grace": "1s"},
  "notifier": {"concurrency": 16, "deletion_interval": 10080, "shutdown_grace": "1s"},
  "backends": {"http": {"timeout": 30}} }
JSON
    run_service resume all "$cfg" "$RESUME_API"
    sleep 0.5
    resume_once plain "ranges=1"
    ok=$RESUME_OK plain_s=$RESUME_S plain_bytes=$RESUME_BYTES
    resume_once cut "ranges=1&cut_once=$((RESUME_SIZE * 9 / 10))"
    [ "$RESUME_OK" = 1 ] || ok=0
    stop resume
    stop origin
    local ratio
    ratio=$(calc "$RESUME_BYTES / $RESUME_SIZE")
    row "$B" "both downloads stored whole" "$([ "$ok" = 1 ] && echo yes || echo NO)" "yes" "$(verdict [ "$ok" = 1 ])"
    row "$B" "cut at 90%: bytes fetched / file" "$(fmt "$ratio" 3) x" "<= 1.12 x" "$(verdict lt "$ratio" 1.12001)"
    row "$B" "uninterrupted: bytes fetched / file" "$(fmt "$(calc "$plain_bytes / $RESUME_SIZE")" 3) x" "" ""
    row "$B" "wall time cut / uninterrupted" "$(fmt "$RESUME_S" 2) s / $(fmt "$plain_s" 2) s" "" ""
}

# ------------------------------------------------------------------------------------
# 7. Rate limits (issue 14)
# ------------------------------------------------------------------------------------
# rate_wait SINK BASE N: waits (at most 90 s) until the SINK (cb, cbr) log has BASE + N
# lines. Sets RW_N (lines seen past BASE) and RW_LAST (time of the latest of them).
rate_wait() {
    local sink=$1 base=$2 n=$3 i
    for ((i = 0; i < 1800; i++)); do
        RW_N=$(($(cb_lines "$sink") - base))
        [ "$RW_N" -ge "$n" ] && break
        nap 0.05
    done
    RW_LAST=$(tail -n +"$((base + 1))" "$T/nginx/$sink.log" | awk '$1 > m {m = $1} END {printf "%.3f", m}')
}

# rate_alone OUT PREFIX: N jobs in 20 aggregations (limit 50, no rate) with callbacks to
# /cb, waited for; sets RA_RATE (jobs/s, first POST -> last callback) and rok=0 when
# some are missing.
rate_alone() {
    local base t0
    base=$(cb_lines)
    t0=$(now)
    post_jobs "$1" "$port" "$N" "$files" 20 50 "$cb" "$2"
    rate_wait cb "$base" "$N"
    [ "$RW_N" -ge "$N" ] || rok=0
    RA_RATE=$(calc "$RW_N / ($RW_LAST - $t0)")
}

bench_rate() {
    local N=2000 RATE=50 B="7 rate limits" d=$S/rate port cfg=$S/rate/rate.json out=$T/wrk_rate
    log "7 rate limits: $N jobs at aggr_rate $RATE next to $N jobs in 20 aggregations without"
    rcli flushall >/dev/null
    port=$(free_port)
    rm -rf "$d"
    mkdir -p "$d/tmp" "$d/files"
    e2e_config "$cfg" "$d" "$port"
    # three processes: the processor's CPU is measured alone
    run_service api api "$cfg" "$port"
    run_service processor processor "$cfg"
    run_service notifier notifier "$cfg"
    sleep 0.5 # processor and notifier subscribed
    local files="http://127.0.0.1:$NGINX_PORT/files/f%04d" cb="http://127.0.0.1:$NGINX_PORT/cb"
    local base rbase tr0 tu0 alone alone2 mixed c0 c1 w0 w1 pcpu rdone rtime rok=1
    log "   $N jobs in 20 aggregations (limit 50, no rate) alone"
    local fc0 fc1 busy
    fc0=$(cpu_ticks "${PROC[processor]}")
    rate_alone "$out.alone1" u
    fc1=$(cpu_ticks "${PROC[processor]}")
    alone=$RA_RATE
    busy=$(calc "1e6 * ($fc1 - $fc0) / $TICKS / $N")
    log "   $N jobs in aggregation r0 (limit 50, aggr_rate $RATE), then $N jobs in 20 others"
    rbase=$(cb_lines cbr)
    base=$(cb_lines)
    tr0=$(now)
    post_jobs "$out.rated" "$port" "$N" "$files" 1 50 "${cb}r" r "$RATE"
    tu0=$(now)
    post_jobs "$out.mixed" "$port" "$N" "$files" 20 50 "$cb" v
    rate_wait cb "$base" "$N"
    [ "$RW_N" -ge "$N" ] || rok=0
    mixed=$(calc "$RW_N / ($RW_LAST - $tu0)")
    log "   only r0 left: processor CPU over 10 s"
    prof_start "${PROC[processor]}" rate
    local d0 calls
    d0=$(cb_lines cbr)
    rcli config resetstat >/dev/null
    c0=$(cpu_ticks "${PROC[processor]}")
    w0=$(now)
    nap 10
    c1=$(cpu_ticks "${PROC[processor]}")
    w1=$(now)
    rcli info commandstats >"$T/rate.commandstats.txt"
    prof_stop
    rdone=$(($(cb_lines cbr) - rbase))
    # script calls (claims, outcomes, enqueue, callbacks, heartbeats) per start
    calls=$(awk -F'[:,=]' '/^cmdstat_evalsha:/ {print $3}' "$T/rate.commandstats.txt")
    calls=$(calc "${calls:-0} / ($rdone + $rbase - $d0)")
    local per_start
    per_start=$(calc "1e6 * ($c1 - $c0) / $TICKS / ($rdone + $rbase - $d0)")
    pcpu=$(calc "100 * ($c1 - $c0) / $TICKS / ($w1 - $w0)")
    # the same machine state (the rate-limited jobs still running): the system-call
    # floor of one start, from a bare loop doing only a start's I/O (bench/floor.c)
    local floor
    mkdir -p "$d/floor"
    floor=$("$FLOOR" "$REDIS_PORT" "$NGINX_PORT" /files/f%04d "$d/floor" 200 "$RATE") ||
        die "bench/floor failed"
    rate_wait cbr "$rbase" "$N"
    [ "$RW_N" -ge "$N" ] || rok=0
    rtime=$(calc "$RW_LAST - $tr0")
    log "   $N jobs in 20 aggregations alone again (the machine's speed drifts)"
    rate_alone "$out.alone2" w
    alone2=$RA_RATE
    stop api
    stop processor
    stop notifier
    local lo hi ratio
    lo=$(calc "0.95 * $N / $RATE")
    hi=$(calc "1.05 * $N / $RATE")
    ratio=$(calc "200 * $mixed / ($alone + $alone2)")
    row "$B" "all jobs called back" "$([ $rok = 1 ] && echo yes || echo NO)" "yes" "$(verdict [ $rok = 1 ])"
    row "$B" "rate-limited: first POST -> last callback" "$(fmt "$rtime" 2) s" \
        "$(fmt "$lo" 0)..$(fmt "$hi" 0) s" "$(verdict eval "ge $rtime $lo && ge $hi $rtime")"
    row "$B" "others alone, before / after: jobs/s" "$(fmt "$alone") / $(fmt "$alone2")" "" ""
    row "$B" "others next to the rate-limited: jobs/s" "$(fmt "$mixed")" "" ""
    row "$B" "  next to / alone (mean of both)" "$(fmt "$ratio" 1) %" ">= 90 %" "$(verdict ge "$ratio" 90)"
    row "$B" "processor CPU, only rate-limited left (10 s)" "$(fmt "$pcpu" 2) %" "< 2 %" "$(verdict lt "$pcpu" 2)"
    row "$B" "  processor CPU per start then" "$(fmt "$per_start") us" "" ""
    row "$B" "  the same I/O from a bare loop (bench/floor.c)" "$(fmt "$floor") us" "" ""
    row "$B" "  that floor at $RATE starts/s" "$(fmt "$(calc "$floor * $RATE / 1e4")" 2) %" "" ""
    row "$B" "  processor CPU per job at full speed (alone)" "$(fmt "$busy") us" "" ""
    row "$B" "  Redis script calls per start then (all)" "$(fmt "$calls" 2)" "" ""
    row "$B" "  rate-limited jobs done after that window" "$rdone of $N" "< $N" "$(verdict [ "$rdone" -lt "$N" ])"
}

# ------------------------------------------------------------------------------------
# 8. Operator control (issue 15)
# ------------------------------------------------------------------------------------
# Redis bytes per remembered (delivered) job, the time to list a page of 50 from a queue
# of 100,000, and a purge of those 100,000 (its longest single Redis call, SLOWLOG).
# slowlog_max [COMMAND]: "<us> <command>" of the longest SLOWLOG entry (of that command
# only, if given).
slowlog_max() {
    rcli --json slowlog get 100000 | python3 -c 'import json, sys
c = sys.argv[1].lower() if len(sys.argv) > 1 else ""
e = [(e[2], e[3][0].lower()) for e in json.load(sys.stdin) if not c or e[3][0].lower() == c]
print("%d %s" % max(e or [(0, "-")]))' "$@"
}

bench_control() {
    local B="8 control" port cfg=$T/control.json d=$S/control n=200 i
    log "8 control: remembered jobs, a page of 50 of 100,000, purge of 100,000"
    rcli flushall >/dev/null
    port=$(free_port)
    rm -rf "$d" && mkdir -p "$d/tmp" "$d/files"
    cat >"$cfg" <<JSON
{ $(redis_cfg),
  "api": {},
  "processor": {"storage_dir": "$d/tmp", "filestorage": {"type": "filesystem", "rootdir": "$d/files"},
                "download_url": "http://127.0.0.1:$port/files", "shutdown_grace": "1s"},
  "notifier": {"concurrency": 64, "deletion_interval": 10080, "shutdown_grace": "1s"},
  "backends": {"http": {"timeout": 30}} }
JSON
    run_service control all "$cfg" "$port"
    # the jobs through the API, in one curl (a config block per POST)
    for ((i = 0; i < n; i++)); do
        printf 'url = "http://127.0.0.1:%s/download"\noutput = "/dev/null"\n' "$port"
        printf 'data = "{\\"url\\":\\"http://127.0.0.1:%s/files/f%04d\\",\\"aggr_id\\":\\"ctl\\",' "$NGINX_PORT" "$i"
        printf '\\"aggr_limit\\":8,\\"callback_url\\":\\"http://127.0.0.1:%s/cb\\"}"\n' "$NGINX_PORT"
        if [ "$i" -lt $((n - 1)) ]; then echo next; fi
    done | curl -s -K -
    local remembered=0 count_lua="local n, b = 0, 0 for _, k in ipairs(redis.call('KEYS', 'job:*')) do if redis.call('HGET', k, 'CallbackState') == 'Delivered' then n = n + 1 b = b + redis.call('MEMORY', 'USAGE', k) end end return {n, b}"
    for ((i = 0; i < 300; i++)); do
        remembered=$(rcli eval "$count_lua" 0 | head -1)
        [ "$remembered" -ge "$n" ] && break
        nap 0.05
    done
    local bytes
    bytes=$(rcli eval "$count_lua" 0 | tail -1)
    row "$B" "Redis bytes per remembered job" "$(calc "$bytes / ($remembered > 0 ? $remembered : 1)")" "" \
        "$(verdict [ "$remembered" -eq "$n" ])"

    rcli hset aggr:big limit 1 paused 1 >/dev/null
    rcli sadd aggrs big >/dev/null
    for ((i = 0; i < 10; i++)); do
        rcli eval "$(cat bench/fill_queue.lua)" 1 q:big big $((i * 10000)) $((i * 10000 + 9999)) >/dev/null
    done
    rcli config set slowlog-log-slower-than 0 >/dev/null
    rcli config set slowlog-max-len 100000 >/dev/null
    rcli slowlog reset >/dev/null
    local urls=() times
    for ((i = 0; i < 50; i++)); do
        urls+=(-o /dev/null "http://127.0.0.1:$port/aggregations/big/jobs?count=50&cursor=$((RANDOM * 3 % 99950))")
    done
    times=$(curl -s -w '%{time_total}\n' "${urls[@]}" | sort -n)
    local p50 max script
    p50=$(echo "$times" | awk '{v[NR] = $1} END {printf "%.2f", 1000 * v[int((NR + 1) / 2)]}')
    max=$(echo "$times" | awk 'END {printf "%.2f", 1000 * $1}')
    script=$(slowlog_max evalsha)
    row "$B" "page of 50 of 100,000: HTTP p50 (max)" "$p50 ($max) ms" "< 5 ms" "$(verdict lt "$p50" 5)"
    row "$B" "page of 50: longest script in Redis" "$(fmt "$(calc "${script%% *} / 1000")" 2) ms" "" ""

    rcli slowlog reset >/dev/null
    local t0 t1 deleted longest
    t0=$(now)
    deleted=$(curl -s -X DELETE "http://127.0.0.1:$port/aggregations/big/jobs" | sed 's/[^0-9]//g')
    t1=$(now)
    longest=$(slowlog_max)
    rcli config set slowlog-log-slower-than 10000 >/dev/null
    row "$B" "purge of 100,000: deleted / time" "$deleted / $(fmt "$(calc "$t1 - $t0")" 2) s" "100000" \
        "$(verdict [ "${deleted:-0}" -eq 100000 ])"
    row "$B" "purge: longest single Redis call" "$(fmt "$(calc "${longest%% *} / 1000")" 2) ms (${longest#* })" \
        "<= 10 ms" "$(verdict lt "$(calc "${longest%% *} / 1000")" 10)"
    stop control
}

# ------------------------------------------------------------------------------------
t_start=$(now)
for b in $BENCHES; do
    case $b in
    api) bench_api ;;
    idem) bench_idem ;;
    e2e) bench_e2e ;;
    split) bench_split ;;
    disk) bench_disk ;;
    mem) bench_mem ;;
    cb) bench_cb ;;
    resume) bench_resume ;;
    rate) bench_rate ;;
    control) bench_control ;;
    scale) mapfile -t -O "${#ROWS[@]}" ROWS < <(BUILD=$BUILD bench/scale.sh --rows) ;; # own processes
    *) die "unknown benchmark $b (api idem e2e split disk mem cb scale resume rate control)" ;;
    esac
done

summary() {
    echo "downloader benchmarks  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(git describe --always --dirty 2>/dev/null || echo dev)"
    echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'), aria2 $(aria2c --version | awk 'NR == 1 {print $3}')"
    echo "total bench time: $(fmt "$(calc "$(now) - $t_start")" 0) s$([ "${BENCH_KEEP:-0}" = 1 ] && echo "; kept $T and $S")"
    echo
    local r w1=14 w2=10 w3=8 w4=6
    for r in "${ROWS[@]}"; do
        IFS='|' read -r b m v t s <<<"$r"
        ((${#b} > w1)) && w1=${#b}
        ((${#m} > w2)) && w2=${#m}
        ((${#v} > w3)) && w3=${#v}
        ((${#t} > w4)) && w4=${#t}
    done
    printf "%-${w1}s  %-${w2}s  %${w3}s  %-${w4}s  %s\n" benchmark metric measured target ok
    printf "%s\n" "$(printf '%*s' $((w1 + w2 + w3 + w4 + 14)) '' | tr ' ' -)"
    local prev=""
    for r in "${ROWS[@]}"; do
        IFS='|' read -r b m v t s <<<"$r"
        [ "$b" = "$prev" ] && b="" || prev=$b
        printf "%-${w1}s  %-${w2}s  %${w3}s  %-${w4}s  %s\n" "$b" "$m" "$v" "$t" "$s"
    done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        printf 'note %s\n' "${NOTES[@]}"
    fi
    local fails=0
    for r in "${ROWS[@]}"; do [[ $r == *"|FAIL" ]] && fails=$((fails + 1)); done
    echo
    echo "targets missed: $fails"
}
mkdir -p bench/results
summary | tee bench/results/latest.txt
