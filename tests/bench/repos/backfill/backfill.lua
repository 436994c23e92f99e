-- The `backfill` benchmark (tests/bench/run.sh backfill): one view of every common column
-- type, online (final state) and offline (every row). run.sh copies this folder once per
-- file format, puts the generated rows in data/ (and for Parquet sets file_format), and
-- times apply's backfill job.
local item = Entity { name = "item", join_keys = { Field("id", Int64) } }

local items = StreamSource {
  name = "items",
  schema = { Field("id", Int64), Field("ts", Timestamp), Field("i64", Int64), Field("f64", Float64),
             Field("s", String), Field("b", Bool) },
  batch_config = FileConfig { uri = "data/", file_format = "csv", timestamp_field = "ts" },
}

local item_attrs = StreamFeatureView {
  name = "item_attrs", source = items, entities = { item }, online = true, offline = true,
  timestamp_field = "ts", feature_start_time = "2000-01-01T00:00:00Z",
  features = { Attribute("i64", Int64), Attribute("f64", Float64), Attribute("s", String),
               Attribute("b", Bool) },
}

FeatureService { name = "items_svc", features = { item_attrs } }
