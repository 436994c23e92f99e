-- The ingest benchmark's workspace with a Lua transformation: as tests/bench/repos/ingest,
-- the attribute view computing its feature from the record in Lua.

local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local impressions_event_source = StreamSource {
  name = "impressions_event_source",
  schema = { Field("user_id", String), Field("timestamp", Timestamp), Field("clicked", Int64) },
}

local last_click = StreamFeatureView {
  name = "last_click",
  source = impressions_event_source,
  entities = { user },
  online = true, offline = true,
  ttl = "30d",
  timestamp_field = "timestamp",
  transformation = function(r)
    r.clicked = r.clicked > 0 and 1 or 0
    return r
  end,
  features = { Attribute("clicked", Int64) },
}

FeatureService { name = "clicks", features = { last_click } }
