# The agg phase of tests/bench/run.sh (sourced by it; uses its helpers): get-features for a
# 1-hour and a 30-day window over 30 days of history, and ingest into each window's view
# (tests/bench/repos/agg: 1-minute tiles, 3 aggregations per view). The server's clock is
# fixed (--fake-now), so every run reads the same windows.
# shellcheck shell=sh disable=SC2154  # the variables of run.sh
agg_users=${BENCH_AGG_USERS:-2000}
agg_events=${BENCH_AGG_EVENTS:-200000}
agg_rates=${BENCH_AGG_RATES:-2000 5000}
agg_batch=${BENCH_AGG_BATCH:-1000}
agg_conns=${BENCH_AGG_CONNS:-4}
agg_now=2025-06-01T00:00:00Z
agg_path=/api/v1/feature-service/get-features

start_sluice agg --fake-now "$agg_now"
"$sluice" workspace create agg --live >/dev/null
"$sluice" apply --workspace agg "$bench/repos/agg" >/dev/null

say "agg: ingesting $agg_events events of $agg_users users over the 30 days before $agg_now into both views"
"$py" "$bench/agg.py" history-bodies "$work/agg-history.jsonl" "$agg_users" "$agg_events" \
    "$agg_now" "$agg_batch"
measure agg-load sluice json "$sluice_pid" \
    "{\"label\":\"load\",\"metrics\":true,\"note\":\"30 days of history, time order, into both views\"}" -- \
    "$py" "$bench/agg.py" load "$url" "$data/admin.key" "$work/agg-history.jsonl" "$agg_conns"
rm -f "$work/agg-history.jsonl"
"$py" "$bench/bench.py" wait-idle "$sluice_pid"
{
    echo "- agg: $agg_events events of $agg_users users at random times over the 30 days before" \
         "the server's fixed clock ($agg_now), $((agg_events / agg_users)) per user on average;" \
         "each view: count, sum, max of one column on 1-minute tiles"
    "$py" "$bench/agg.py" look "$url" "$data/admin.key" "$agg_users"
} >"$work/agg-look.txt"
cat "$work/agg-look.txt"
cat "$work/agg-look.txt" >>"$header"

for w in 1h 30d; do
    "$py" "$bench/agg.py" get-bodies "$work/agg-get-$w.jsonl" "$agg_users" "spend_${w}_svc"
done
# 1h and 30d alternate, setting by setting, so both rows of a pair see the same background load.
say "agg: get-features, wrk at saturation, 1h window then 30d"
for w in 1h 30d; do
    measure agg-get-features "sluice-$w" wrk "$sluice_pid" \
        "{\"threads\":$wrk_threads,\"connections\":$conns,\"label\":\"wrk\"}" -- \
        wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" -H "$auth" -s "$bench/post.lua" \
        "$url$agg_path" -- "$work/agg-get-$w.jsonl"
done
for r in $agg_rates; do
    say "agg: get-features at $r requests/s, 1h window then 30d"
    for w in 1h 30d; do
        measure agg-get-features "sluice-$w" loadgen "$sluice_pid" "{\"label\":\"rate$r\"}" -- \
            "$work/loadgen" -u "$url$agg_path" -c "$rate_conns" -r "$r" -d "$secs" \
            -b "$work/agg-get-$w.jsonl" -H "$auth" -l "agg-$w@$r"
    done
done

say "agg: ingest at saturation, $agg_batch records per request, $agg_conns connections, one view at a time"
for w in 1h 30d; do
    "$py" "$bench/agg.py" ingest-bodies "$work/agg-ingest-$w.jsonl" "$agg_users" "$agg_now" \
        "$agg_batch" 50 "tx_$w"
    "$py" "$bench/bench.py" wait-idle "$sluice_pid"
    measure agg-ingest "sluice-$w" loadgen "$sluice_pid" \
        "{\"records_per_request\":$agg_batch,\"label\":\"ingest\",\"metrics\":true,\"note\":\"3 aggregations\"}" -- \
        "$work/loadgen" -u "$url/ingest" -c "$agg_conns" -r 0 -d "$secs" \
        -b "$work/agg-ingest-$w.jsonl" -H "$auth" -l "agg-ingest-$w"
done
stop_sluice
