-- Runs Lua sent in the request, so that tests can throw hostile code at the two places user
-- code runs while serving: a transformation at /ingest and a realtime view at get-features.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local ev = StreamSource {
  name = "ev",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("code", String) },
}

local run_code = StreamFeatureView {
  name = "run_code", source = ev, entities = { user }, online = true, timestamp_field = "ts",
  transformation = function(r)
    assert(load(r.code, "=code"))()
    return r
  end,
  features = { Attribute("code", String) },
}

local req = RequestSource { name = "req", schema = { Field("code", String) } }

local rt = RealtimeFeatureView {
  name = "rt",
  sources = { req },
  features = { Attribute("ok", Int64) },
  transformation = function(request, inputs)
    assert(load(request.code, "=code"))()
    return { ok = 1 }
  end,
}

FeatureService { name = "svc", features = { run_code, rt } }
