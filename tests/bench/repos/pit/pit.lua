-- The `pit` benchmark (tests/bench/run.sh pit): a user's latest transaction as attribute
-- features, written to the offline store only, and a realtime view over them. run.sh copies this folder and puts the
-- generated feature rows in data/features.csv; apply's backfill job loads them.
local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local tx = StreamSource {
  name = "tx",
  schema = { Field("user_id", String), Field("ts", Timestamp), Field("amount", Float64),
             Field("qty", Int64), Field("merchant", String) },
  batch_config = FileConfig { uri = "data/features.csv", file_format = "csv", timestamp_field = "ts" },
}

local last_tx = StreamFeatureView {
  name = "last_tx", source = tx, entities = { user }, offline = true,
  timestamp_field = "ts", feature_start_time = "2000-01-01T00:00:00Z",
  features = { Attribute("amount", Float64), Attribute("qty", Int64), Attribute("merchant", String) },
}

FeatureService { name = "training", features = { last_tx } }

-- The same with a realtime view, run per event offline: its cost per event is the
-- difference between the two training sets (the events' event_id is its request context).
local event = RequestSource { name = "event", schema = { Field("event_id", Int64) } }

local tx_score = RealtimeFeatureView {
  name = "tx_score",
  sources = { event, last_tx },
  features = { Attribute("score", Float64), Attribute("big", Bool) },
  transformation = function(request, inputs)
    local amount = inputs.last_tx.amount
    if amount == sluice.null then
      return { score = sluice.null, big = false }
    end
    return { score = amount * (1 + request.event_id % 7) / 7, big = amount > 50 }
  end,
}

FeatureService { name = "training_rt", features = { tx_score, last_tx } }
