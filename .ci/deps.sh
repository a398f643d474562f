#!/usr/bin/env bash
# Installs the Debian packages one purpose needs: `deps.sh run` (build and `make run`:
# compiler, libraries, redis-server, python3, curl) or `deps.sh test` (that, plus
# cmocka, Sentinel, Chromium, Node.js with the test-only npm packages in test/, and
# systemd for systemd-analyze). DEPS_EXTRA adds packages. Idempotent: only missing
# packages are installed; uses sudo when not root.
set -euo pipefail
purpose=${1:-test}
pkgs=(build-essential pkg-config libuv1-dev libhiredis-dev libcurl4-openssl-dev libyajl-dev
      librdkafka-dev libhttp-parser-dev libmagic-dev libssl-dev redis-server redis-tools
      python3 curl)
case $purpose in
run) ;;
test) pkgs+=(libcmocka-dev redis-sentinel chromium nodejs npm systemd) ;;
*) echo "deps: unknown purpose $purpose (run or test)" >&2; exit 2 ;;
esac
[ "${DEPS_EXTRA:-}" ] && read -r -a extra <<<"$DEPS_EXTRA" && pkgs+=("${extra[@]}")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# node and npm may come from elsewhere than Debian (e.g. a preinstalled Node.js)
command -v node >/dev/null && missing=("${missing[@]/nodejs}")
command -v npm >/dev/null && missing=("${missing[@]/npm}")
read -r -a missing <<<"${missing[*]:-}"
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[ "$purpose" = test ] || exit 0
# the browser test's driver (playwright-core, no browser download: Debian's chromium is used)
# and the S3 API server of test_s3 (s3rver)
if [ -f test/package.json ] && { [ ! -d test/node_modules/playwright-core ] ||
    [ ! -d test/node_modules/s3rver ]; }; then
    echo "deps: npm ci in test/" >&2
    (cd test && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
