-- Transformations under test: drop, fan-out, errors, limits and sandbox escapes.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local ev = StreamSource {
  name = "ev",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("x", Int64), Field("mode", String) },
  post_processor = function(r)
    if r.mode == "skip" then return nil end
    return r
  end,
}

local clamp = StreamFeatureView {
  name = "clamp", source = ev, entities = { user }, online = true, timestamp_field = "ts",
  transformation = function(r)
    if r.mode == "drop" then return nil end
    r.x = r.x > 0 and 1 or 0
    return r
  end,
  features = { Attribute("x", Int64) },
}

local fan = StreamFeatureView {
  name = "fan", source = ev, entities = { user }, online = true, timestamp_field = "ts",
  transformation = function(r)
    if r.mode ~= "fan" then return r end
    return { { user_id = r.user_id .. "-a", ts = r.ts, x = r.x },
             { user_id = r.user_id .. "-b", ts = r.ts, x = r.x * 2 } }
  end,
  features = { Attribute("x", Int64) },
}

local risky = StreamFeatureView {
  name = "risky", source = ev, entities = { user }, online = true, timestamp_field = "ts",
  transformation = function(r)
    if r.mode == "error" then error("boom " .. r.user_id) end
    if r.mode == "loop" then while true do end end
    if r.mode == "mem" then
      local t = {}
      for i = 1, 1e9 do t[i] = string.rep("x", 4096) .. i end
    end
    if r.mode == "escape" then return io.open("/etc/passwd") end
    if r.mode == "os" then os.execute("true") end
    if r.mode == "shape" then return 42 end
    if r.mode == "badtype" then r.x = "many" end
    return r
  end,
  features = { Attribute("x", Int64), Attribute("mode", String) },
}

FeatureService { name = "svc", features = { clamp, fan, risky } }
