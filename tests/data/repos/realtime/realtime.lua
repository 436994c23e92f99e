-- Realtime views over stream views, for the online/offline parity of realtime views:
-- inputs served by the service whole (cont), in part (tiled) and not at all (last_tx).
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local tx = StreamSource {
  name = "tx",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("amount", Float64),
             Field("qty", Int64), Field("merchant", String) },
}

local req = RequestSource {
  name = "req",
  schema = { Field("amount", Float64), Field("channel", String), Field("n", Int64),
             Field("flag", Bool) },
}

local last_tx = StreamFeatureView {
  name = "last_tx", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts", ttl = "1h",
  features = { Attribute("amount", Float64), Attribute("merchant", String) },
}

local tiled = StreamFeatureView {
  name = "tiled", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts", aggregation_interval = "1m",
  features = {
    Aggregate { column = "qty", fn = "sum", window = "1h", name = "sum1h" },
    Aggregate { column = "amount", fn = "mean", window = "30m", name = "mean30m" },
    Aggregate { column = "merchant", fn = "last_distinct", n = 3, window = "1h", name = "merchants" },
  },
}

local cont = StreamFeatureView {
  name = "cont", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts",
  features = {
    Aggregate { column = "qty", fn = "sum", window = "10m", name = "sum10m" },
    Aggregate { column = "qty", fn = "count", window = "lifetime", name = "life" },
  },
}

local rt = RealtimeFeatureView {
  name = "rt",
  sources = { req, last_tx, tiled, cont },
  features = {
    Attribute("ratio", Float64), Attribute("is_high", Int64), Attribute("label", String),
    Attribute("seen", Array(String)), Attribute("busy", Bool),
  },
  transformation = function(request, inputs)
    if request.channel == "boom" then
      error("no such channel")
    end
    while request.channel == "spin" do end
    local mean = inputs.tiled.mean30m
    local ratio = sluice.null
    if mean ~= sluice.null and mean > 0 then
      ratio = request.amount / mean
    end
    local recent = inputs.cont.sum10m
    if recent == sluice.null then
      recent = 0
    end
    local last = inputs.last_tx.merchant
    local seen = {}
    if inputs.tiled.merchants ~= sluice.null then
      for i, m in ipairs(inputs.tiled.merchants) do
        seen[i] = m .. "/" .. request.channel
      end
    end
    return {
      ratio = ratio,
      is_high = (ratio ~= sluice.null and ratio > 2) and 1 or 0,
      label = request.channel .. ":" .. (last ~= sluice.null and last or "none"),
      seen = seen,
      busy = request.flag and recent + request.n > 10,
    }
  end,
}

local echo = RealtimeFeatureView {
  name = "echo",
  sources = { req },
  features = { Attribute("n2", Int64), Attribute("at", Timestamp) },
  transformation = function(request, inputs)
    return { n2 = request.n * 2, at = sluice.time.now() }  -- offline: the event's time
  end,
}

FeatureService { name = "svc", features = { rt, echo, tiled:select { "sum1h" }, cont } }
