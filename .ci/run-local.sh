#!/usr/bin/env bash
# `make run`: start a private redis-server under ./var when the configured one
# does not answer, then run `downloader all`. Ctrl-C stops both.
set -euo pipefail
bin=$1
cfg=$2
addr=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("redis") or {}).get("addr") or "localhost:6379")' "$cfg")
host=${addr%:*}
port=${addr##*:}
redis_pid=""
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT
if ! redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
    mkdir -p var/redis
    echo "run: no redis at $addr, starting a private redis-server in ./var/redis" >&2
    redis-server --bind "$host" --port "$port" --dir "$PWD/var/redis" --appendonly yes \
        --save "" --daemonize no --logfile "$PWD/var/redis/redis.log" &
    redis_pid=$!
    for _ in $(seq 50); do
        redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
mkdir -p var/files
"$bin" all -c "$cfg" &
app=$!
trap 'kill -TERM $app 2>/dev/null' INT TERM
wait $app || true
wait $app 2>/dev/null || true
