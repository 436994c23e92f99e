-- Aggregate views under test: a tiled view (1-minute interval) with every function, a
-- 30-day, a lifetime and an offset window; a continuous view.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local tx = StreamSource {
  name = "tx",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("amount", Float64),
             Field("qty", Int64), Field("merchant", String) },
}

local function A(column, fn, name, extra)
  local a = { column = column, fn = fn, window = "1h", name = name }
  for k, v in pairs(extra or {}) do a[k] = v end
  return Aggregate(a)
end

local tiled = StreamFeatureView {
  name = "tiled", source = tx, entities = { user }, online = true, timestamp_field = "ts",
  aggregation_interval = "1m",
  features = {
    A("qty", "sum", "sum"), A("qty", "count", "count"), A("amount", "mean", "mean"),
    A("amount", "min", "min"), A("amount", "max", "max"), A("merchant", "last", "last"),
    A("qty", "last_n", "last3", { n = 3 }), A("qty", "first_n", "first2", { n = 2 }),
    A("merchant", "last_distinct", "ldist", { n = 3 }),
    A("merchant", "first_distinct", "fdist", { n = 3 }),
    A("amount", "stddev_samp", "sdev"), A("amount", "var_pop", "varp"),
    A("merchant", "approx_count_distinct", "acd"),
    A("amount", "approx_percentile", "p50", { percentile = 0.5 }),
    Aggregate { column = "qty", fn = "sum", window = "30d", name = "sum30d" },
    Aggregate { column = "qty", fn = "count", window = "lifetime", name = "life" },
    Aggregate { column = "qty", fn = "sum", window = "1h", offset = "-1h", name = "prev_hour" },
  },
}

local cont = StreamFeatureView {
  name = "cont", source = tx, entities = { user }, online = true, timestamp_field = "ts",
  features = {
    Aggregate { column = "qty", fn = "sum", window = "10m", name = "sum10m" },
    Aggregate { column = "merchant", fn = "last", window = "10m", name = "last10m" },
    Aggregate { column = "qty", fn = "count", window = "lifetime", name = "life" },
  },
}

FeatureService { name = "svc", features = { tiled, cont } }
