-- Views using plugins (tests/integration/test_plugins.py): top_k from the agg_topk plugin in
-- a tiled, a lifetime and a continuous window, written online and offline, and geo.distance
-- from the lua_geo plugin in a transformation.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local tx = StreamSource {
  name = "tx",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("qty", Int64),
             Field("merchant", String) },
}

local tiled = StreamFeatureView {
  name = "tiled", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts", aggregation_interval = "1m",
  features = {
    Aggregate { column = "merchant", fn = "top_k", n = 3, window = "1h", name = "top3" },
    Aggregate { column = "qty", fn = "top_k", n = 2, window = "lifetime", name = "topq" },
    Aggregate { column = "merchant", fn = "top_k", n = 2, window = "1h" },
  },
}

local cont = StreamFeatureView {
  name = "cont", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts",
  features = {
    Aggregate { column = "merchant", fn = "top_k", n = 2, window = "10m", name = "top2" },
  },
}

local pos = StreamSource {
  name = "pos",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("lat", Float64),
             Field("lon", Float64), Field("km", Float64) },
}

local moves = StreamFeatureView {
  name = "moves", source = pos, entities = { user }, online = true, timestamp_field = "ts",
  transformation = function(r)
    r.km = geo.distance(r.lat, r.lon, 48.8566, 2.3522)
    return r
  end,
  features = { Attribute("km", Float64) },
}

FeatureService { name = "svc", features = { tiled, cont } }
FeatureService { name = "geo_svc", features = { moves } }
