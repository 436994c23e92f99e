-- The ingest benchmark's workspace: the ads example's source feeding one attribute view,
-- online and offline (the issue's "batched ingest, attribute view, durable acks").

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
  features = { Attribute("clicked", Int64) },
}

FeatureService { name = "clicks", features = { last_click } }
