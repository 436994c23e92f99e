-- The `agg` benchmark (tests/bench/run.sh agg): the same three aggregations over a 1-hour and
-- a 30-day window, both on 1-minute tiles. Each view has its own source, so ingest into one
-- view can be measured alone, and its own feature service, so get-features reads one window.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local function source(name)
  return StreamSource {
    name = name,
    schema = { Field("user_id", String), Field("ts", Timestamp), Field("amount", Float64) },
  }
end

local function view(name, src, window)
  return StreamFeatureView {
    name = name, source = src, entities = { user }, online = true,
    timestamp_field = "ts", aggregation_interval = "1m",
    features = {
      Aggregate { column = "amount", fn = "count", window = window, name = "n" },
      Aggregate { column = "amount", fn = "sum", window = window, name = "total" },
      Aggregate { column = "amount", fn = "max", window = window, name = "largest" },
    },
  }
end

local tx_1h, tx_30d = source("tx_1h"), source("tx_30d")
local spend_1h = view("spend_1h", tx_1h, "1h")
local spend_30d = view("spend_30d", tx_30d, "30d")

FeatureService { name = "spend_1h_svc", features = { spend_1h } }
FeatureService { name = "spend_30d_svc", features = { spend_30d } }
