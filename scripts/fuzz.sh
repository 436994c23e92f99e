#!/bin/sh
# Builds the libFuzzer targets in tests/fuzz/ with clang-14 (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 20), starting from tests/fuzz/corpus/<target>/ when present (`make
# check` replays those corpora in every build, through tests/fuzz/replay.c).
# Usage: scripts/fuzz.sh [target ...]      Prints one line per target; exits non-zero on a crash.
set -e
cd "$(dirname "$0")/.."
command -v clang-14 >/dev/null || { echo "fuzz: clang-14 is needed (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
out=${FUZZ_DIR:-/tmp/sluice-fuzz}
mkdir -p "$out"
sh scripts/embed.sh sl_dsl_lua scripts/lua/dsl.lua "$out/dsl_lua.c"
# the configure and build results the sources below need (the tree itself is configured out of tree)
version=$(sed -n 's/^AC_INIT(\[sluice\], \[\([^]]*\)\].*/\1/p' configure.ac)
printf '#define PACKAGE_VERSION "%s"\n' "$version" >"$out/sluice_config.h"
sh scripts/version.sh . "$version" "$out/sl_version.h"
secs=${FUZZ_SECONDS:-20}
san="address,undefined -fno-sanitize-recover=undefined"
cflags="-std=gnu11 -g -O1 -fsanitize=fuzzer-no-link,$san -Icore -Iplugins -I"$out" $(pkg-config --cflags lua5.4 libcjson)"
libs="$(pkg-config --libs lua5.4-cjson lua5.4 libcjson libzstd zlib snappy libxxhash libcrypto) -lleveldb -lm"
base="core/error.c core/buf.c core/json.c core/timeutil.c core/types.c"
lua="core/lua_vm.c core/lua_match.c core/lua_sluice.c core/defs.c $out/dsl_lua.c core/log.c core/agg.c core/agg_fn.c core/agg_sketch.c core/plugin.c core/store.c core/store_leveldb.c core/metrics.c"
files="core/filesrc.c core/parquet.c"
targets=${*:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
# each source is compiled once (two at a time), then every target links the objects it needs
obj() { echo "$out/obj/$(basename "$1" .c).o"; }
mkdir -p "$out/obj"
for src in $base $lua $files $(for t in $targets; do echo "tests/fuzz/$t.c"; done); do
    # shellcheck disable=SC2086
    echo "clang-14 $cflags -c $src -o $(obj "$src")"
done | xargs -P "$(nproc)" -I{} sh -c {}
status=0
for t in $targets; do
    case $t in
        fuzz_defs|fuzz_lua) srcs="$base $lua" ;;
        fuzz_csv|fuzz_parquet) srcs="$base $files" ;;
        *) srcs="$base" ;;
    esac
    objs=$(for src in $srcs "tests/fuzz/$t.c"; do obj "$src"; done)
    # shellcheck disable=SC2086
    clang-14 -fsanitize=fuzzer,$san $objs -o "$out/$t" $libs
    corpus="$out/corpus-$t"
    mkdir -p "$corpus"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$corpus/"
    if "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$t-" \
        "$corpus" >"$out/$t.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log")
        echo "fuzz: $t ok ($runs runs in ${secs}s)"
    else
        echo "fuzz: $t FAILED (see $out/$t.log)"
        tail -30 "$out/$t.log"
        status=1
    fi
done
exit $status
