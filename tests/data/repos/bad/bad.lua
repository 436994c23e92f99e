local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local src = StreamSource {
  name = "src",
  schema = { Field("user_id", String), Field("timestamp", Timestamp), Field("x", Int64) },
}

StreamFeatureView {
  name = "v",
  source = src,
  entities = { user },
  online = true,
  timestamp_field = "timestamp",
  features = { Attribute("nope", Int64) },
}
