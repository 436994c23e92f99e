#!/bin/sh
# Installs the Debian packages Sluice builds and tests with (as root; skipped when present).
# Usage: scripts/deps.sh [build|test|bench]   (each level includes the ones before)
set -e
level=${1:-test}
pkgs="build-essential autoconf automake libtool pkg-config libevent-dev liblua5.4-dev \
lua-cjson-dev libcjson-dev libleveldb-dev libsnappy-dev libxxhash-dev libssl-dev libzstd-dev zlib1g-dev libhiredis-dev check curl \
libsystemd-dev"
case "$level" in
    test|bench) pkgs="$pkgs python3 python3-jsonschema valgrind clang-14 libclang-rt-14-dev"
        # promtool and a real Prometheus; a headless browser for the status page; man, systemd-analyze
        pkgs="$pkgs prometheus chromium man-db systemd redis-server redis-tools" ;;
esac
case "$level" in
    bench)
        pkgs="$pkgs wrk nginx-light redis-server redis-tools python3-pandas nodejs"
        # Debian ships npm apart from nodejs; other nodejs builds bundle it.
        command -v npm >/dev/null || pkgs="$pkgs npm" ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
