-- A source loaded from batch files (tests copy this repository and put files in data/).
local item = Entity { name = "item", join_keys = { Field("id", Int64) } }

local items = StreamSource {
  name = "items",
  schema = { Field("id", Int64), Field("ts", Timestamp), Field("i64", Int64), Field("f64", Float64),
             Field("s", String), Field("b", Bool) },
  batch_config = FileConfig { uri = "data/", file_format = "parquet", timestamp_field = "ts" },
}

local attrs = StreamFeatureView {
  name = "attrs", source = items, entities = { item }, online = true, offline = true,
  timestamp_field = "ts", feature_start_time = "2000-01-01T00:00:00Z", batch_schedule = "1h",
  features = { Attribute("i64", Int64), Attribute("f64", Float64), Attribute("s", String),
               Attribute("b", Bool) },
}

local totals = StreamFeatureView {
  name = "totals", source = items, entities = { item }, online = true, offline = true,
  timestamp_field = "ts", aggregation_interval = "1h", batch_schedule = "1h",
  feature_start_time = "2000-01-01T00:00:00Z",
  features = {
    Aggregate { column = "f64", fn = "sum", window = "lifetime", name = "total" },
    Aggregate { column = "i64", fn = "count", window = "lifetime", name = "n" },
  },
}

FeatureService { name = "svc", features = { attrs, totals } }
