# The pit phase of tests/bench/run.sh (sourced by it; uses its helpers): a training set built
# three ways from the same CSV files, on this machine, in this run — Sluice's
# get-features-for-events (feature rows loaded into the offline store by a backfill job; also
# with a realtime view, for its cost per event),
# DuckDB's ASOF JOIN and pandas' merge_asof — then the three outputs compared.
# shellcheck shell=sh disable=SC2154  # the variables of run.sh
pit_rows=${BENCH_PIT_ROWS:-1000000}
pit_users=${BENCH_PIT_USERS:-100000}
pit_events=${BENCH_PIT_EVENTS:-200000}
pit_check=${BENCH_PIT_CHECK:-10000}

need_duckdb
pit_dir="$work/pit-files"
mkdir -p "$pit_dir/repo/data"
cp "$bench/repos/pit/pit.lua" "$pit_dir/repo/"
# Feature rows and events over the 30 days before the last full hour (none in the future).
pit_end=$(( $(date +%s) / 3600 * 3600 - 3600 ))
say "pit: generating $pit_rows feature rows of $pit_users users and $pit_events events (DuckDB)"
node "$bench/duckdb.mjs" pit-data "$pit_dir/repo/data/features.csv" "$pit_dir/events.csv" \
    "$pit_rows" "$pit_users" "$pit_events" "$pit_end" >/dev/null
# The server holds the whole events upload in memory; let it take the file.
pit_body=$(( $(wc -c <"$pit_dir/events.csv") + (1 << 20) ))
[ "$pit_body" -gt 268435456 ] || pit_body=268435456
echo "- pit: feature rows $(du -h "$pit_dir/repo/data/features.csv" | cut -f1)B CSV" \
     "(user_id, ts, amount, qty, merchant), events $(du -h "$pit_dir/events.csv" | cut -f1)B CSV" \
     "(event_id, user_id, timestamp), output CSV" >>"$header"

start_sluice pit --max-events-body "$pit_body"
"$sluice" workspace create pit --live >/dev/null
pit_info="\"rows_total\":$pit_rows,\"users\":$pit_users,\"events\":$pit_events"
say "pit: Sluice loads the feature rows (backfill job from the CSV)"
measure pit sluice json "$sluice_pid" \
    "{\"label\":\"load\",$pit_info,\"what\":\"feature rows → offline store (load, not part of the join)\"}" -- \
    "$py" "$bench/bench.py" apply-wait "$sluice" pit "$pit_dir/repo"
"$py" "$bench/bench.py" wait-idle "$sluice_pid"
# Times `sluice get-features-for-events` of service $1 into $2: label $3, step $4, what $5.
pit_sluice_join() {
    say "pit: Sluice get-features-for-events ($1)"
    measure pit sluice json "$sluice_pid" \
        "{\"label\":\"$3\",\"step\":\"$4\",$pit_info,\"what\":\"$5\"}" -- \
        "$sluice" get-features-for-events --workspace pit --feature-service "$1" \
        --events "$pit_dir/events.csv" --format csv --output "$2" \
        --chunk-size "${BENCH_PIT_CHUNK:-64M}"
}
pit_sluice_join training "$pit_dir/sluice.csv" join get-features-for-events \
    "CLI → HTTP → offline store, CSV in and out"
pit_sluice_join training_rt "$pit_dir/sluice-rt.csv" join-rt \
    "get-features-for-events + realtime view" "the same with tx_score, a Lua function run per event"
stop_sluice
say "pit: DuckDB ASOF JOIN"
measure pit duckdb json - \
    "{\"label\":\"asof\",\"step\":\"ASOF JOIN\",$pit_info,\"what\":\"reads both CSVs, writes CSV\"}" -- \
    node "$bench/duckdb.mjs" asof "$pit_dir/repo/data/features.csv" "$pit_dir/events.csv" \
    "$pit_dir/duckdb.csv"
say "pit: pandas merge_asof"
measure pit pandas json - \
    "{\"label\":\"merge_asof\",\"step\":\"merge_asof\",$pit_info,\"what\":\"reads both CSVs, writes CSV\"}" -- \
    "$py" "$bench/pit.py" pandas "$pit_dir/repo/data/features.csv" "$pit_dir/events.csv" \
    "$pit_dir/pandas.csv"
say "pit: comparing the three outputs on $pit_check events"
measure pit check json - "{\"label\":\"check\",\"systems\":[\"Sluice\",\"DuckDB\",\"pandas\"]}" -- \
    "$py" "$bench/pit.py" check "$pit_check" "$pit_dir/sluice.csv" "$pit_dir/duckdb.csv" \
    "$pit_dir/pandas.csv"
rm -rf "$pit_dir"
