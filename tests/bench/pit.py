"""The pit benchmark's pandas side and its output check (tests/bench/run.sh pit).

Usage:
  pit.py pandas FEATURES_CSV EVENTS_CSV OUT_CSV   the training set with pandas.merge_asof; one
                                                  JSON line: seconds inside Python (import
                                                  included) and pandas' version
  pit.py check SAMPLE OUT_CSV...                  compares the outputs on SAMPLE events spread
                                                  over the file; one JSON line (`ok`)

The inputs are duckdb.mjs pit-data's: features (user_id, ts, amount, qty, merchant) and events
(event_id, user_id, timestamp); the outputs hold the event columns, then last_tx__amount,
last_tx__qty, last_tx__merchant (the user's latest feature row at or before the event's time;
empty when there is none), one row per event in input order.
"""

import csv
import json
import os
import sys
import time

FEATURES = ["last_tx__amount", "last_tx__qty", "last_tx__merchant"]


def cmd_pandas(features_csv, events_csv, out_csv):
    t0 = time.monotonic()
    import pandas as pd
    t_import = time.monotonic() - t0
    f = pd.read_csv(features_csv, dtype={"user_id": str, "ts": str, "amount": "float64",
                                         "qty": "Int64", "merchant": str})
    f["t"] = pd.to_datetime(f["ts"], utc=True)  # RFC 3339: the fast ISO 8601 parser
    f = f.drop(columns="ts").rename(columns={"amount": FEATURES[0], "qty": FEATURES[1],
                                             "merchant": FEATURES[2]})
    e = pd.read_csv(events_csv, dtype={"event_id": "int64", "user_id": str, "timestamp": str})
    e["t"] = pd.to_datetime(e["timestamp"], utc=True)
    out = pd.merge_asof(e.sort_values("t", kind="stable"), f.sort_values("t", kind="stable"),
                        on="t", by="user_id", direction="backward", allow_exact_matches=True)
    out = out.sort_values("event_id", kind="stable").drop(columns="t")
    out.to_csv(out_csv, index=False)
    print(json.dumps({"tool": "pandas", "step": "merge_asof", "version": pd.__version__,
                      "seconds": time.monotonic() - t0, "import_seconds": t_import}))


def same(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= 1e-9 * max(1.0, abs(x))


def cmd_check(sample, *outs):
    sample = int(sample)
    readers = [csv.DictReader(open(p, newline="")) for p in outs]
    counts = []
    for p in outs:
        with open(p, "rb") as f:
            counts.append(sum(1 for _ in f) - 1)
    names = [os.path.basename(p) for p in outs]
    rows = differ = present = 0
    first = []
    every = max(1, counts[0] // max(1, sample))
    for i, recs in enumerate(zip(*readers)):
        if i % every:
            continue
        rows += 1
        ref = recs[0]
        present += ref[FEATURES[0]] != ""
        bad = []
        for r, name in zip(recs[1:], names[1:]):
            if r["event_id"] != ref["event_id"]:
                bad.append("row %d: event %s in %s, %s in %s" % (i, ref["event_id"], names[0],
                                                                 r["event_id"], name))
                continue
            bad += ["event %s %s: %r in %s, %r in %s" % (ref["event_id"], c, ref[c], names[0], r[c], name)
                    for c in FEATURES if not same(ref[c], r[c])]
        differ += bool(bad)
        first += bad[:5 - len(first)]
    ok = differ == 0 and len(set(counts)) == 1 and rows > 0
    print(json.dumps({"tool": "check", "step": "agree", "rows_compared": rows,
                      "with_a_value": present, "rows_differing": differ, "row_counts": counts,
                      "ok": ok, "first_differences": first}))


if __name__ == "__main__":
    cmds = {"pandas": cmd_pandas, "check": cmd_check}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
