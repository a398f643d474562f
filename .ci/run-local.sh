#!/usr/bin/env bash
# `make run`: run `downloader all` on HOST:PORT (default 127.0.0.1:8000) with the given
# config, and a private redis-server under ./var/redis when the configured Redis does not
# answer.
#
# Signals: the service and the private Redis run in sessions of their own, so the
# terminal's Ctrl-C (SIGINT to the foreground process group) reaches this script only.
# The first SIGINT/SIGTERM is forwarded once as SIGTERM: the service drains and exits 0,
# and only then is the private Redis stopped. A second one forwards a second SIGTERM,
# which makes the service exit at once (exit 1, "second signal").
# Env: HOST, PORT (api listen address), VAR (state directory, default ./var).
set -euo pipefail
bin=$1
cfg=$2
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
var=${VAR:-$PWD/var}
addr=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("redis") or {}).get("addr") or "localhost:6379")' "$cfg")
rhost=${addr%:*}
rport=${addr##*:}
redis_pid=""
app=""
signals=0

say() { echo "run: $*" >&2; }

stop_redis() {
    [ -n "$redis_pid" ] || return 0
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    say "private redis-server stopped (data kept in $var/redis)"
    redis_pid=""
}
trap stop_redis EXIT

on_signal() {
    signals=$((signals + 1))
    [ -n "$app" ] || exit 130
    if [ "$signals" -eq 1 ]; then
        say "draining (Ctrl-C again to force)"
    else
        say "forcing the stop"
    fi
    kill -TERM "$app" 2>/dev/null || true
}
trap on_signal INT TERM

if ! redis-cli -h "$rhost" -p "$rport" ping >/dev/null 2>&1; then
    mkdir -p "$var/redis"
    setsid redis-server --bind "$rhost" --port "$rport" --dir "$var/redis" --appendonly yes \
        --save "" --daemonize no --logfile "$var/redis/redis.log" </dev/null &
    redis_pid=$!
    for _ in $(seq 100); do
        redis-cli -h "$rhost" -p "$rport" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis_note="private redis-server on $addr: data in $var/redis, log in $var/redis/redis.log"
else
    redis_note="using the Redis already answering on $addr (not started or stopped by make run)"
fi
mkdir -p "$var/files" "$var/tmp"
setsid "$bin" all --host "$host" --port "$port" -c "$cfg" </dev/null &
app=$!
url_host=$host
[ "$host" = "0.0.0.0" ] || [ -z "$host" ] && url_host=127.0.0.1
for _ in $(seq 100); do
    kill -0 "$app" 2>/dev/null || break
    curl -fsS -o /dev/null "http://$url_host:$port/ready" 2>/dev/null && break
    sleep 0.1
done
if kill -0 "$app" 2>/dev/null; then
    say "dashboard: http://$url_host:$port/  (api on $host:$port)"
    say "$redis_note"
    say "stop: Ctrl-C once drains and then stops the private Redis; twice forces"
fi
rc=0
while kill -0 "$app" 2>/dev/null; do
    # wait returns early (status > 128) when a trapped signal arrives; loop until it exits
    wait "$app" && rc=0 || rc=$?
done
wait "$app" 2>/dev/null && rc=0 || { r=$?; [ "$r" -ne 127 ] && rc=$r; }
say "downloader exited with status $rc"
stop_redis
exit "$rc"
