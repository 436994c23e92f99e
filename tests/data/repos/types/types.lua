-- A repository with every scalar and nested type, for round-trip and validation tests.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }
local account = Entity { name = "account", join_keys = { Field("account_id", Int64) } }

local events = StreamSource {
  name = "events",
  schema = {
    Field("user_id", String), Field("account_id", Int64), Field("ts", Timestamp),
    Field("s", String), Field("i64", Int64), Field("i32", Int32), Field("f64", Float64),
    Field("f32", Float32), Field("b", Bool), Field("t", Timestamp),
    Field("arr", Array(Int64)), Field("m", Map(String, Float64)),
    Field("st", Struct { Field("a", Int64), Field("b", String) }),
  },
}

local user_attrs = StreamFeatureView {
  name = "user_attrs",
  source = events,
  entities = { user },
  online = true, offline = true,
  timestamp_field = "ts",
  ttl = "30d",
  features = {
    Attribute("s", String), Attribute("i64", Int64), Attribute("i32", Int32),
    Attribute("f64", Float64), Attribute("f32", Float32), Attribute("b", Bool),
    Attribute("t", Timestamp), Attribute("arr", Array(Int64)),
    Attribute("m", Map(String, Float64)),
    Attribute("st", Struct { Field("a", Int64), Field("b", String) }),
  },
}

local account_attrs = StreamFeatureView {
  name = "account_attrs",
  source = events,
  entities = { account },
  online = true, offline = false,
  timestamp_field = "ts",
  ttl = "1d",
  features = { Attribute("f64", Float64), Attribute("s", String) },
}

FeatureService { name = "user_service", features = { user_attrs } }
FeatureService { name = "account_service", features = { account_attrs } }
FeatureService { name = "mixed", features = { account_attrs, user_attrs:select { "i64", "s" } } }
