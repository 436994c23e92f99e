#!/bin/sh
# Sluice's benchmark suite: ingest and get-features beside raw LevelDB, nginx and Redis;
# aggregation windows; point-in-time training sets beside DuckDB and pandas; backfill beside
# DuckDB — all in one run on this machine, everything on 127.0.0.1. Prints a markdown summary
# and writes it to tests/bench/results/latest.md. See tests/bench/README.md.
#
# Usage: tests/bench/run.sh [all|ingest|serve|agg|pit|backfill]
# Environment (defaults in brackets; README.md has the table):
#   BENCH_SECONDS [5] per phase          BENCH_CONNS [32] wrk/redis-benchmark connections
#   BENCH_WRK_THREADS [2]                BENCH_RATE_CONNS [128] loadgen connections at a fixed rate
#   BENCH_INGEST_CONNS ["4 16"]          BENCH_INGEST_RATE [5000] single-record ingest, req/s
#   BENCH_RATES ["5000 10000 20000"]     BENCH_KEYS [10000] users preloaded for get-features
#   BENCH_AGG_USERS [2000]               BENCH_AGG_EVENTS [200000] history over 30 days
#   BENCH_AGG_RATES ["2000 5000"]        BENCH_AGG_BATCH [1000] BENCH_AGG_CONNS [4] agg ingest
#   BENCH_PIT_ROWS [1000000]             BENCH_PIT_USERS [100000] BENCH_PIT_EVENTS [200000]
#   BENCH_PIT_CHECK [10000]              BENCH_PIT_CHUNK [64M] the CLI's --chunk-size
#   BENCH_BACKFILL_ROWS [1000000]        BENCH_BACKFILL_IDS [100000]
#   BENCH_DUCKDB_DIR [npm install here]  BENCH_DUCKDB_PKG [@duckdb/node-api]
#   BENCH_THREADS [server default]       BENCH_DIR [$TMPDIR or /tmp] where the data dirs go
#   BENCH_SLUICE_BIN [build this tree]   BENCH_PERF [0] 1: perf record the servers per phase
#   BENCH_NO_DEPS [0] 1: skip scripts/deps.sh  BENCH_SERVER_ARGS: more `sluice serve` flags
#                                        (e.g. "--read-cache-mb 0" for uncached reads)
set -eu
what=${1:-all}
case "$what" in
    all|ingest|serve|agg|pit|backfill) ;;
    *) echo "usage: tests/bench/run.sh [all|ingest|serve|agg|pit|backfill]" >&2; exit 2 ;;
esac
bench=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$bench/../.." && pwd)
cd "$top"

# Whether phase $1 runs.
want() { [ "$what" = all ] || [ "$what" = "$1" ]; }

secs=${BENCH_SECONDS:-5}
conns=${BENCH_CONNS:-32}
wrk_threads=${BENCH_WRK_THREADS:-2}
ingest_conns=${BENCH_INGEST_CONNS:-4 16}
ingest_rate=${BENCH_INGEST_RATE:-5000}
rates=${BENCH_RATES:-5000 10000 20000}
rate_conns=${BENCH_RATE_CONNS:-128}
keys=${BENCH_KEYS:-10000}
py=/usr/bin/python3
[ -x "$py" ] || py=python3

say() { printf '== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

if [ "${BENCH_NO_DEPS:-0}" != 1 ]; then
    sh scripts/deps.sh bench
fi
need="gcc pkg-config"
if want serve; then need="$need wrk nginx"; fi
if want agg; then need="$need wrk"; fi
if want pit || want backfill; then need="$need node npm"; fi
for tool in $need; do
    command -v "$tool" >/dev/null || die "$tool is needed (sh scripts/deps.sh bench)"
done
if want pit; then
    "$py" -c 'import pandas' 2>/dev/null || die "pandas is needed for $py (sh scripts/deps.sh bench)"
fi
if [ -n "${BENCH_SLUICE_BIN:-}" ]; then
    sluice=$(cd "$(dirname "$BENCH_SLUICE_BIN")" && pwd)/$(basename "$BENCH_SLUICE_BIN")
    [ -x "$sluice" ] || die "$BENCH_SLUICE_BIN is not an executable"
else
    say "building Sluice"
    sh scripts/build.sh
    sluice="$top/build/sluice"
fi

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/sluice-bench.XXXXXX")
pids=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    if [ "$rc" != 0 ] && [ -n "${sluice_pid:-}" ] && ! kill -0 "$sluice_pid" 2>/dev/null; then
        st=0
        wait "$sluice_pid" 2>/dev/null || st=$?
        echo "bench: sluice serve exited (status $st); the end of its log:" >&2
        tail -n 20 "$sluice_log" >&2 || true
    fi
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops a server this script started and forgets its pid.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    rest=""
    for p in $pids; do
        [ "$p" = "$1" ] || rest="$rest $p"
    done
    pids=$rest
}

say "building loadgen and leveldb_put"
# shellcheck disable=SC2046
gcc -O2 -Wall -Wextra -o "$work/loadgen" "$bench/loadgen.c" \
    $(pkg-config --cflags --libs libevent) -lm
gcc -O2 -Wall -Wextra -o "$work/leveldb_put" "$bench/leveldb_put.c" -lleveldb

raw="$work/raw"
results="$work/results.jsonl"
mkdir -p "$raw"
: >"$results"
measure() { "$py" "$bench/bench.py" measure "$results" "$raw" "$@"; }

# Waits (up to 15 s) for a file to contain a pattern; fails if process $2 dies first.
wait_log() {
    i=0
    while ! grep -q "$3" "$1" 2>/dev/null; do
        kill -0 "$2" 2>/dev/null || { cat "$1" >&2; die "$4 exited"; }
        [ $i -lt 150 ] || { cat "$1" >&2; die "$4 did not start"; }
        sleep 0.1
        i=$((i + 1))
    done
}

# Starts `sluice serve` on a fresh data directory $work/NAME with the extra settings given,
# and points the CLI and bench.py at it: sets sluice_pid, sluice_log, data, url and auth.
start_sluice() {
    sluice_name=$1
    shift
    data="$work/$sluice_name"
    sluice_log="$work/$sluice_name.log"
    mkdir -p "$data"
    # no access log: one line per request would measure the log file, not the engine
    # (BENCH_SERVER_ARGS=--access-log=true measures it)
    set -- serve --data-dir "$data" --listen 127.0.0.1:0 --log-level info --access-log=false "$@"
    [ -z "${BENCH_THREADS:-}" ] || set -- "$@" --threads "$BENCH_THREADS"
    # shellcheck disable=SC2086
    [ -z "${BENCH_SERVER_ARGS:-}" ] || set -- "$@" $BENCH_SERVER_ARGS
    "$sluice" "$@" >"$sluice_log" 2>&1 &
    sluice_pid=$!
    pids="$pids $sluice_pid"
    wait_log "$sluice_log" "$sluice_pid" 'listening on .* (port [0-9]*)' "sluice serve"
    port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$sluice_log" | head -n 1)
    url="http://127.0.0.1:$port"
    export SLUICE_URL="$url"
    SLUICE_API_KEY=$(cat "$data/admin.key")
    export SLUICE_API_KEY
    export BENCH_URL="$url" BENCH_KEYFILE="$data/admin.key"
    auth="Authorization: Sluice-key $SLUICE_API_KEY"
    say "sluice serve on $url (pid $sluice_pid), data in $data"
}

# Stops the current server, keeping the warnings and errors of its log for the end.
stop_sluice() {
    grep ' error \| warn ' "$sluice_log" | sed "s|^|$sluice_name: |" >>"$work/warnings.txt" || true
    stop "$sluice_pid"
    sluice_pid=""
}

# Makes DuckDB's Node.js package available to duckdb.mjs (once): $BENCH_DUCKDB_DIR if it holds
# it, else an npm install into the temporary directory.
need_duckdb() {
    [ -z "${duckdb_ready:-}" ] || return 0
    if [ -n "${BENCH_DUCKDB_DIR:-}" ]; then
        [ -d "$BENCH_DUCKDB_DIR/node_modules/@duckdb/node-api" ] ||
            die "BENCH_DUCKDB_DIR=$BENCH_DUCKDB_DIR holds no node_modules/@duckdb/node-api"
    else
        BENCH_DUCKDB_DIR="$work/duckdb"
        mkdir -p "$BENCH_DUCKDB_DIR"
        say "installing ${BENCH_DUCKDB_PKG:-@duckdb/node-api} with npm"
        (cd "$BENCH_DUCKDB_DIR" && npm install --no-save --no-audit --no-fund --loglevel=error \
            "${BENCH_DUCKDB_PKG:-@duckdb/node-api}" >/dev/null) || die "npm install of DuckDB failed"
    fi
    export BENCH_DUCKDB_DIR
    duckdb_ready=1
    echo "- DuckDB $(node "$bench/duckdb.mjs" version) (Node.js $(node --version)," \
         "@duckdb/node-api $(node -p "require('$BENCH_DUCKDB_DIR/node_modules/@duckdb/node-api/package.json').version"))" \
         >>"$header"
}

header="$work/header.md"
{
    echo "# Sluice benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -sr)"
    if [ -n "${BENCH_SLUICE_BIN:-}" ]; then
        echo "- sluice: $sluice ($("$sluice" --version 2>/dev/null | head -n 1))"
    else
        echo "- sluice: $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$top" diff --quiet HEAD -- core 2>/dev/null || echo ' + uncommitted core changes')"
    fi
    echo "- sluice --threads ${BENCH_THREADS:-default} ${BENCH_SERVER_ARGS:-} (one server per phase group, each on a fresh data directory); data on $(df -P "$work" | awk 'NR == 2 { print $1 }')"
    echo "- ${secs} s per phase; saturation: wrk -t$wrk_threads -c$conns (get-features), loadgen" \
         "(ingest); fixed rates: loadgen -c$rate_conns; all on 127.0.0.1, load tools on the same CPUs as the servers"
    echo "- latency in ms; loadgen's fixed-rate latency counts from each request's due time" \
         "(no coordinated omission); CPU columns = % of one core over the phase"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$header"

# Each group of phases below has a server of its own on a fresh data directory, so that no
# phase runs under the LevelDB compaction and segment sealing left by the ones before.
if want ingest; then
    start_sluice ingest
    "$sluice" workspace create bench --live >/dev/null
    "$sluice" apply --workspace bench scripts/examples/ads >/dev/null
    # Three workloads on the same records: the issue's (one attribute view, online and
    # offline), the same view with a Lua transformation, and the ads example (an attribute
    # view plus a view of three tiled aggregations with a Lua transformation).
    "$sluice" workspace create attr --live >/dev/null
    "$sluice" apply --workspace attr "$bench/repos/ingest" >/dev/null
    "$sluice" workspace create attr_lua --live >/dev/null
    "$sluice" apply --workspace attr_lua "$bench/repos/ingest_lua" >/dev/null
    for wl in "attr:attribute view" "attr_lua:attribute view with a Lua transformation" \
              "bench:ads example (attribute + 3 tiled aggregations, Lua)"; do
        ws=${wl%%:*}
        name=${wl#*:}
        "$py" "$bench/bench.py" ingest-bodies "$work/ingest100-$ws.jsonl" 100 1000 "b$ws" "$ws"
        for c in $ingest_conns; do
            say "ingest: batched, $name (100 records/request, saturation, $c connections)"
            measure ingest-batched sluice loadgen "$sluice_pid" \
                "{\"records_per_request\":100,\"label\":\"batched-$ws-$c\",\"workload\":\"$name\",\"metrics\":true}" -- \
                "$work/loadgen" -u "$url/ingest" -c "$c" -r 0 -d "$secs" \
                -b "$work/ingest100-$ws.jsonl" -H "$auth" -l "ingest-batched-$ws-c$c"
        done
    done
    say "ingest: raw LevelDB, the same shape (100 records of 60 bytes per synced WriteBatch)"
    measure ingest-batched leveldb leveldb - '{}' -- \
        "$work/leveldb_put" -d "$work/leveldb-batch" -b 100 -v 60 -t "$secs" -m batch
    stop_sluice
    start_sluice ingest-single
    "$sluice" workspace create attr --live >/dev/null
    "$sluice" apply --workspace attr "$bench/repos/ingest" >/dev/null
    say "ingest: single record at $ingest_rate requests/s, attribute view"
    "$py" "$bench/bench.py" ingest-bodies "$work/ingest1.jsonl" 1 20000 s attr
    measure ingest-single sluice loadgen "$sluice_pid" '{"label":"single","workload":"attribute view","metrics":true}' -- \
        "$work/loadgen" -u "$url/ingest" -c "$rate_conns" -r "$ingest_rate" -d "$secs" \
        -b "$work/ingest1.jsonl" -H "$auth" -l ingest-single
    say "ingest: raw LevelDB, one synced put per write"
    measure ingest-single leveldb leveldb - '{}' -- \
        "$work/leveldb_put" -d "$work/leveldb-single" -b 1 -v 60 -t "$secs" -m single
    stop_sluice
fi

if want serve; then
    start_sluice serve
    "$sluice" workspace create serve --live >/dev/null
    "$sluice" apply --workspace serve "$bench/repos/serve" >/dev/null
    say "get-features: preloading $keys users (2 views, 10 features, 6 of them aggregations)"
    www="$work/www"
    mkdir -p "$www"
    "$py" "$bench/bench.py" preload "$url" "$data/admin.key" "$keys" g "$www/get-features.json" \
        >"$work/preload.txt"
    cat "$work/preload.txt"
    cat "$work/preload.txt" >>"$header"
    "$py" "$bench/bench.py" get-bodies "$work/get.jsonl" "$keys" g
    path=/api/v1/feature-service/get-features

    # nginx: its own config, prefix and logs under $work; the same URL path answers a POST
    # with the static file (405 turned into the file), so the requests are byte for byte those
    # Sluice got.
    nport=$("$py" "$bench/bench.py" port)
    ng="$work/nginx"
    mkdir -p "$ng"
    chmod 755 "$work" "$ng" "$www"
    chmod 644 "$www/get-features.json"
    cat >"$ng/nginx.conf" <<EOF
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$nport;
        location = $path {
            default_type application/json;
            alias $www/get-features.json;
            error_page 405 =200 \$uri;
        }
    }
}
EOF
    nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/error.log" -g 'daemon off;' &
    nginx_pid=$!
    pids="$pids $nginx_pid"
    i=0
    until curl -fsS -o /dev/null -X POST -d '{}' "http://127.0.0.1:$nport$path" 2>/dev/null; do
        kill -0 "$nginx_pid" 2>/dev/null || { cat "$ng/error.log" >&2; die "nginx exited"; }
        [ $i -lt 100 ] || die "nginx did not answer"
        sleep 0.1
        i=$((i + 1))
    done
    # Sluice and nginx alternate, setting by setting, so that both rows of a pair see the same
    # background load.
    size=$(wc -c <"$www/get-features.json")
    say "get-features: wrk at saturation, Sluice then nginx (static file of $size bytes)"
    measure get-features sluice wrk "$sluice_pid" "{\"threads\":$wrk_threads,\"connections\":$conns,\"label\":\"wrk\"}" -- \
        wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" -H "$auth" -s "$bench/post.lua" \
        "$url$path" -- "$work/get.jsonl"
    measure get-features nginx wrk "$nginx_pid" "{\"threads\":$wrk_threads,\"connections\":$conns,\"label\":\"wrk\"}" -- \
        wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" -H "$auth" -s "$bench/post.lua" \
        "http://127.0.0.1:$nport$path" -- "$work/get.jsonl"
    if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
        rport=$("$py" "$bench/bench.py" port)
        mkdir -p "$work/redis"
        redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
            --daemonize no --dir "$work/redis" --logfile "$work/redis/redis.log" &
        redis_pid=$!
        pids="$pids $redis_pid"
        wait_log "$work/redis/redis.log" "$redis_pid" 'Ready to accept connections' redis-server
        redis-benchmark -h 127.0.0.1 -p "$rport" -t set -n 20000 -r 1000 -d "$size" -q >/dev/null
        say "get-features: Redis GET of a $size-byte value, redis-benchmark at saturation"
        measure get-features redis redis "$redis_pid" "{\"threads\":$wrk_threads,\"connections\":$conns,\"label\":\"get\"}" -- \
            redis-benchmark -h 127.0.0.1 -p "$rport" -t get -n $((40000 * secs)) -r 1000 \
            -d "$size" -c "$conns" --threads "$wrk_threads" --csv
        stop "$redis_pid"
    else
        say "redis-server or redis-benchmark missing: no Redis comparison"
    fi
    for r in $rates; do
        say "get-features: loadgen at $r requests/s, Sluice then nginx"
        measure get-features sluice loadgen "$sluice_pid" "{\"label\":\"rate$r\"}" -- \
            "$work/loadgen" -u "$url$path" -c "$rate_conns" -r "$r" -d "$secs" \
            -b "$work/get.jsonl" -H "$auth" -l "get-features@$r"
        measure get-features nginx loadgen "$nginx_pid" "{\"label\":\"rate$r\"}" -- \
            "$work/loadgen" -u "http://127.0.0.1:$nport$path" -c "$rate_conns" -r "$r" -d "$secs" \
            -b "$work/get.jsonl" -H "$auth" -l "nginx@$r"
    done
    stop "$nginx_pid"
    stop_sluice
fi

if want agg; then
    . "$bench/agg.sh"
fi
if want pit; then
    . "$bench/pit.sh"
fi
if want backfill; then
    . "$bench/backfill.sh"
fi

echo
mkdir -p "$bench/results"
cp "$results" "$bench/results/latest.jsonl"
"$py" "$bench/bench.py" table "$results" "$bench/results/latest.md" "$header"
rm -rf "$bench/results/perf"
if [ "${BENCH_PERF:-0}" = 1 ]; then
    mkdir -p "$bench/results/perf"
    cp "$raw"/*.perf.txt "$bench/results/perf/" 2>/dev/null || true
fi
if [ -s "$work/warnings.txt" ]; then
    echo "== warnings and errors in the server logs:"
    head -n 20 "$work/warnings.txt"
fi
echo "(written to tests/bench/results/latest.md)"
if grep -q '"step": "agree".*"ok": false' "$results"; then
    die "the pit outputs differ (see the summary)"
fi
