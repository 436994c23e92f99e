-- The serving benchmark's workspace (the issue's "a service of 2 views / 10 features incl.
-- aggregates"): one attribute view of 4 features and one view of 6 tiled aggregations over
-- windows from 1 hour to 30 days, both keyed by user.

local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local events = StreamSource {
  name = "events",
  schema = { Field("user_id", String), Field("timestamp", Timestamp), Field("clicked", Int64),
             Field("amount", Float64), Field("device", String), Field("category", String) },
}

local user_last = StreamFeatureView {
  name = "user_last",
  source = events,
  entities = { user },
  online = true, offline = false,
  ttl = "30d",
  timestamp_field = "timestamp",
  features = { Attribute("clicked", Int64), Attribute("amount", Float64),
               Attribute("device", String), Attribute("category", String) },
}

local user_stats = StreamFeatureView {
  name = "user_stats",
  source = events,
  entities = { user },
  online = true, offline = false,
  timestamp_field = "timestamp",
  aggregation_interval = "10m",
  features = {
    Aggregate { column = "clicked", fn = "sum", window = "1h" },
    Aggregate { column = "clicked", fn = "count", window = "1d" },
    Aggregate { column = "amount", fn = "mean", window = "1d" },
    Aggregate { column = "amount", fn = "max", window = "7d" },
    Aggregate { column = "amount", fn = "sum", window = "30d" },
    Aggregate { column = "category", fn = "last_distinct", n = 5, window = "30d",
                name = "recent_categories" },
  },
}

FeatureService { name = "serve_service", features = { user_last, user_stats } }
