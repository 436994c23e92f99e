-- The ads example of DESIGN §3 (after Tecton's Stream Ingest API documentation): ad
-- impressions pushed per user, served as the latest click and as windowed click counts.

local user = Entity { name = "user", join_keys = { Field("user_id", String) },
                      description = "A user of the platform", tags = { release = "production" } }

local impressions_event_source = StreamSource {
  name = "impressions_event_source",
  description = "A stream source for synchronous, online ingestion of ad-click events with user info.",
  schema = { Field("user_id", String), Field("timestamp", Timestamp), Field("clicked", Int64) },
  batch_config = FileConfig { uri = "data/impressions.csv", file_format = "csv",
                              timestamp_field = "timestamp" },
}

local click_events_fv = StreamFeatureView {
  name = "click_events_fv",
  source = impressions_event_source,
  entities = { user },
  online = true, offline = true,
  feature_start_time = "2022-01-01T00:00:00Z",
  batch_schedule = "1d",
  ttl = "30d",
  timestamp_field = "timestamp",
  features = { Attribute("clicked", Int64) },
  description = "The count of ad clicks for a user",
}

local user_click_counts = StreamFeatureView {
  name = "user_click_counts",
  source = impressions_event_source,
  entities = { user },
  online = true, offline = true,
  timestamp_field = "timestamp",
  aggregation_interval = "10m",                 -- omit for continuous mode
  transformation = function(r)                  -- optional; nil drops the record,
    r.clicked = r.clicked > 0 and 1 or 0        -- an array of records fans out
    return r
  end,
  features = {
    Aggregate { column = "clicked", fn = "sum",   window = "1h" },   -- clicked_sum_1h_10m
    Aggregate { column = "clicked", fn = "count", window = "30d" },
    Aggregate { column = "clicked", fn = "last_distinct", n = 10, window = "1d",
                name = "recent_clicks" },
  },
}

FeatureService { name = "ad_ctr_feature_service", features = { click_events_fv, user_click_counts } }
