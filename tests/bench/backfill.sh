# The backfill phase of tests/bench/run.sh (sourced by it; uses its helpers): a backfill job
# per file format (tests/bench/repos/backfill, one workspace each, one after the other), timed
# from apply to the job's success, beside DuckDB reading the same files.
# shellcheck shell=sh disable=SC2154  # the variables of run.sh
bf_rows=${BENCH_BACKFILL_ROWS:-1000000}
bf_ids=${BENCH_BACKFILL_IDS:-100000}

need_duckdb
bf_dir="$work/backfill-files"
for f in csv parquet; do
    mkdir -p "$bf_dir/$f/data"
    sed "s/file_format = \"csv\"/file_format = \"$f\"/" "$bench/repos/backfill/backfill.lua" \
        >"$bf_dir/$f/backfill.lua"
    grep -q "file_format = \"$f\"" "$bf_dir/$f/backfill.lua" ||
        die "repos/backfill/backfill.lua no longer says file_format = \"csv\""
done
# Rows over the 30 days before the last full hour (none in the future).
bf_end=$(( $(date +%s) / 3600 * 3600 - 3600 ))
say "backfill: generating $bf_rows rows of $bf_ids ids as CSV and Parquet (DuckDB)"
node "$bench/duckdb.mjs" backfill-data "$bf_dir/csv/data/rows.csv" \
    "$bf_dir/parquet/data/rows.parquet" "$bf_rows" "$bf_ids" "$bf_end" >/dev/null
echo "- backfill: rows (id Int64, ts Timestamp, i64 Int64, f64 Float64, s String, b Bool) in time" \
     "order; CSV $(du -h "$bf_dir/csv/data/rows.csv" | cut -f1)B, Parquet" \
     "$(du -h "$bf_dir/parquet/data/rows.parquet" | cut -f1)B (DuckDB's defaults: Snappy," \
     "122,880-row groups); view online and offline, 4 attributes" >>"$header"

start_sluice backfill
for f in csv parquet; do
    "$sluice" workspace create "bf_$f" --live >/dev/null
    say "backfill: Sluice, $f"
    measure backfill sluice json "$sluice_pid" \
        "{\"label\":\"$f\",\"format\":\"$f\",\"ids\":$bf_ids,\"what\":\"apply → job succeeded\"}" -- \
        "$py" "$bench/bench.py" apply-wait "$sluice" "bf_$f" "$bf_dir/$f"
    "$py" "$bench/bench.py" wait-idle "$sluice_pid"
    say "backfill: DuckDB reading the same $f file"
    for q in count all; do
        case $q in
            count) sql="SELECT count(*)" ;;
            all) sql="SELECT aggregates of every column" ;;
        esac
        measure backfill duckdb json - \
            "{\"label\":\"$f-$q\",\"format\":\"$f\",\"ids\":$bf_ids,\"what\":\"$sql\"}" -- \
            node "$bench/duckdb.mjs" scan "$bf_dir/$f/data/rows.$f" "$q"
    done
done
stop_sluice
rm -rf "$bf_dir"
