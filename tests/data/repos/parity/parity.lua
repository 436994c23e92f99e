-- Views written online and offline, for online/offline parity tests.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local tx = StreamSource {
  name = "tx",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("amount", Float64),
             Field("qty", Int64), Field("merchant", String) },
}

local last_tx = StreamFeatureView {
  name = "last_tx", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts", ttl = "1h",
  features = { Attribute("amount", Float64), Attribute("merchant", String) },
}

local tiled = StreamFeatureView {
  name = "tiled", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts", aggregation_interval = "1m",
  features = {
    Aggregate { column = "qty", fn = "sum", window = "1h", name = "sum1h" },
    Aggregate { column = "qty", fn = "count", window = "30m", name = "count30m" },
    Aggregate { column = "amount", fn = "max", window = "1h", name = "max1h" },
    Aggregate { column = "qty", fn = "last", n = 3, window = "1h", name = "last3" },
    Aggregate { column = "merchant", fn = "approx_count_distinct", window = "1h", name = "acd" },
    Aggregate { column = "qty", fn = "count", window = "lifetime", name = "life" },
    Aggregate { column = "amount", fn = "sum", window = "10m", offset = "-10m", name = "prev10" },
  },
}

local cont = StreamFeatureView {
  name = "cont", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts",
  features = {
    Aggregate { column = "qty", fn = "sum", window = "10m", name = "sum10m" },
    Aggregate { column = "merchant", fn = "last", window = "10m", name = "last10m" },
    Aggregate { column = "qty", fn = "count", window = "lifetime", name = "life" },
  },
}

FeatureService { name = "svc", features = { last_tx, tiled, cont } }
