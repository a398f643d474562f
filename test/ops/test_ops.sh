#!/usr/bin/env bash
# Operations tests: `make run` (.ci/run-local.sh) under a process group as a terminal
# runs it, `make install` into a temporary DESTDIR, and the systemd unit
# (systemd-analyze verify and security, when systemd-analyze exists).
#
# run-local: the script runs in a process group of its own and gets SIGINT sent to the
# whole group, as Ctrl-C does. One SIGINT: the service drains (a slow download in flight
# is requeued after processor.shutdown_grace), exits 0 after "bye", and only then is the
# private Redis stopped. Two SIGINTs: the service exits at once with status 1.
#
# Prints cmocka-style summary lines for test/run.sh. Env: DOWNLOADER_BIN, DOWNLOADER_SRC.
set -u
SRC=${DOWNLOADER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${DOWNLOADER_BIN:-$SRC/build/downloader}
tmp=$(mktemp -d /tmp/dl-ops-XXXXXX)
pids=()
passed=0
failed=()
cleanup() {
    local p c
    for p in "${pids[@]}"; do
        # run-local's service and redis run in sessions of their own: not in its group
        for c in $(pgrep -P "$p"); do kill -KILL "$c" 2>/dev/null; done
        kill -KILL -- "-$p" "$p" 2>/dev/null
    done
    [ -n "${KEEP_TEST_DIRS:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
fail() {
    echo "  FAIL: $*"
    return 1
}
check() { # check NAME FUNCTION
    echo "[ RUN      ] $1"
    if "$2"; then
        echo "[       OK ] $1"
        passed=$((passed + 1))
    else
        echo "[  FAILED  ] $1"
        failed+=("$1")
    fi
}
wait_for() { # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}

origin_port=$(free_port)
python3 "$SRC/test/origin.py" --port "$origin_port" >"$tmp/origin.log" 2>&1 &
pids+=($!)
disown
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$origin_port" 2>/dev/null

# start_run DIR: .ci/run-local.sh in DIR (config, var/) in a new process group
start_run() {
    local d=$1
    rport=$(free_port)
    aport=$(free_port)
    mkdir -p "$d"
    cat >"$d/config.json" <<EOF
{"redis": {"addr": "127.0.0.1:$rport"},
 "processor": {"storage_dir": "./var/tmp", "filestorage": {"rootdir": "./var/files"},
   "download_url": "http://127.0.0.1:$aport/files", "shutdown_grace": "3s",
   "block_private_networks": true, "allow_cidrs": ["127.0.0.0/8"]},
 "notifier": {"concurrency": 16, "deletion_interval": 60},
 "backends": {"http": {"timeout": 10}}}
EOF
    (cd "$d" && HOST=127.0.0.1 PORT=$aport exec setsid "$SRC/.ci/run-local.sh" "$BIN" config.json \
        >"$d/out.log" 2>&1) &
    run_pid=$!
    pids+=($run_pid)
    wait_for 20 grep -q "^run: stop:" "$d/out.log" || { cat "$d/out.log"; fail "no start-up lines"; return 1; }
    redis_pid=$(redis-cli -p "$rport" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p' | tr -d '\r')
    [ -n "$redis_pid" ] || fail "private redis not running"
}

# post_slow: one download that takes 30 s, and wait until it runs
post_slow() {
    curl -fsS -X POST "http://127.0.0.1:$aport/download" -d "{\"url\":
      \"http://127.0.0.1:$origin_port/data/30000?chunk=1000&chunk_delay_ms=1000\",
      \"aggr_id\":\"ops\",\"aggr_limit\":1,\"callback_url\":\"http://127.0.0.1:$origin_port/callback/x\"}" \
        >/dev/null || return 1
    wait_for 15 bash -c "redis-cli -p $rport zcard leases 2>/dev/null | grep -qx 1"
}

# the script's exit status, waiting at most $1 seconds
exit_status() {
    local end=$((SECONDS + $1))
    while kill -0 "$run_pid" 2>/dev/null; do
        [ $SECONDS -ge $end ] && return 124
        sleep 0.1
    done
    wait "$run_pid"
}

test_run_prints_where_things_are() {
    local d=$tmp/run0
    start_run "$d" || return 1
    grep -q "^run: dashboard: http://127.0.0.1:$aport/" "$d/out.log" || fail "no dashboard URL" || return 1
    grep -q "data in $d/var/redis, log in $d/var/redis/redis.log" "$d/out.log" || fail "no redis paths" || return 1
    grep -q "Ctrl-C once drains" "$d/out.log" || fail "no stop hint" || return 1
    # bound to loopback only
    ss -ltnH "sport = :$aport" | grep -q "127.0.0.1:$aport" || fail "api not on 127.0.0.1" || return 1
    kill -INT -- "-$run_pid"
    exit_status 30 >/dev/null
    return 0
}

test_run_one_sigint_drains_then_stops_redis() {
    local d=$tmp/run1
    start_run "$d" || return 1
    post_slow || fail "slow download not running" || return 1
    kill -INT -- "-$run_pid"
    local rc
    exit_status 40
    rc=$?
    cat "$d/out.log" | grep -v '^{' | sed 's/^/    /'
    [ "$rc" -eq 0 ] || fail "make run exited $rc" || return 1
    local log=$d/out.log
    grep -q '"msg":"shutting down"' "$log" || grep -q 'shutting down' "$log" || fail "no shutting down" || return 1
    [ "$(grep -c 'shutting down' "$log")" -eq 1 ] || fail "the service got more than one signal" || return 1
    ! grep -q 'second signal' "$log" || fail "second signal logged" || return 1
    grep -q 'requeueing running downloads' "$log" || fail "the download was not requeued by the drain" || return 1
    grep -q 'bye' "$log" || fail "no bye" || return 1
    # order: the service has exited 0 before redis was told to stop
    local bye stop
    bye=$(grep -n 'downloader exited with status 0' "$log" | cut -d: -f1)
    stop=$(grep -n 'private redis-server stopped' "$log" | cut -d: -f1)
    [ -n "$bye" ] && [ -n "$stop" ] && [ "$bye" -lt "$stop" ] || fail "redis not stopped after the service" || return 1
    ! kill -0 "$redis_pid" 2>/dev/null || fail "redis still running" || return 1
}

test_run_second_sigint_forces() {
    local d=$tmp/run2
    start_run "$d" || return 1
    post_slow || fail "slow download not running" || return 1
    kill -INT -- "-$run_pid"
    wait_for 10 grep -q "draining" "$d/out.log"
    kill -INT -- "-$run_pid"
    local rc
    exit_status 10
    rc=$?
    [ "$rc" -eq 1 ] || fail "make run exited $rc, not 1" || return 1
    grep -q 'second signal' "$d/out.log" || fail "no second signal" || return 1
    ! grep -q 'requeueing running downloads' "$d/out.log" || fail "drained anyway" || return 1
    ! kill -0 "$redis_pid" 2>/dev/null || fail "redis still running" || return 1
}

test_install_tree() {
    local dest=$tmp/dest
    make -s -C "$SRC" install DESTDIR="$dest" PREFIX=/opt/dl BIN="$BIN" >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log"; fail "make install failed"; return 1; }
    local f
    for f in opt/dl/bin/downloader opt/dl/lib/systemd/system/downloader@.service \
        etc/downloader/config.json etc/downloader/config.json.README \
        opt/dl/share/doc/downloader/README.md opt/dl/share/doc/downloader/docs/operations.md \
        opt/dl/share/doc/downloader/docs/config.md; do
        [ -s "$dest/$f" ] || fail "missing $f" || return 1
    done
    [ -x "$dest/opt/dl/bin/downloader" ] || fail "binary not executable" || return 1
    "$dest/opt/dl/bin/downloader" version | grep -q "Downloader Version" || fail "binary broken" || return 1
    grep -q '^ExecStart=/opt/dl/bin/downloader %i -c /etc/downloader/config.json$' \
        "$dest/opt/dl/lib/systemd/system/downloader@.service" || fail "ExecStart not at PREFIX" || return 1
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["processor"]["block_private_networks"] is True' \
        "$dest/etc/downloader/config.json" || fail "installed config not safe" || return 1
    [ "$(stat -c %a "$dest/etc/downloader/config.json")" = 640 ] || fail "config mode" || return 1
    # every key the installed config sets is explained in the README next to it
    local k
    for k in $(python3 -c 'import json,sys
c=json.load(open(sys.argv[1]))
for s,v in c.items():
    for k in v: print(s+"."+k)' "$dest/etc/downloader/config.json"); do
        grep -q "^$k" "$dest/etc/downloader/config.json.README" || fail "$k not explained" || return 1
    done
    # a reinstall keeps a local config
    echo '{"edited": true}' >"$dest/etc/downloader/config.json"
    make -s -C "$SRC" install DESTDIR="$dest" PREFIX=/opt/dl BIN="$BIN" >/dev/null 2>&1
    grep -q edited "$dest/etc/downloader/config.json" || fail "reinstall overwrote the config" || return 1
}

test_systemd_unit() {
    if ! command -v systemd-analyze >/dev/null; then
        echo "  skipped: systemd-analyze not installed"
        return 0
    fi
    local root=$tmp/sdroot
    make -s -C "$SRC" install DESTDIR="$root" PREFIX=/usr/local BIN="$BIN" >/dev/null 2>&1 || return 1
    local unit=$root/usr/local/lib/systemd/system/downloader@.service
    # verify checks that ExecStart exists: point a copy at the DESTDIR binary
    local out check=$tmp/sdcheck/downloader@.service
    mkdir -p "$tmp/sdcheck"
    sed "s#^ExecStart=/usr/local/bin/downloader#ExecStart=$root/usr/local/bin/downloader#" "$unit" >"$check"
    out=$(systemd-analyze verify "$check" 2>&1) || { echo "$out"; fail "systemd-analyze verify failed"; return 1; }
    if [ -n "$out" ]; then
        echo "$out"
        fail "systemd-analyze verify complained" || return 1
    fi
    out=$(systemd-analyze security --offline=true "$unit" 2>&1 | tail -1)
    echo "  $out"
    local score
    score=$(echo "$out" | sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || fail "no exposure level" || return 1
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score above 2.0" || return 1
}

check test_run_prints_where_things_are test_run_prints_where_things_are
check test_run_one_sigint_drains_then_stops_redis test_run_one_sigint_drains_then_stops_redis
check test_run_second_sigint_forces test_run_second_sigint_forces
check test_install_tree test_install_tree
check test_systemd_unit test_systemd_unit

echo "[  PASSED  ] $passed test(s)."
if [ ${#failed[@]} -gt 0 ]; then
    echo "[  FAILED  ] ${#failed[@]} test(s), listed below:"
    for f in "${failed[@]}"; do echo "[  FAILED  ] $f"; done
    exit 1
fi
