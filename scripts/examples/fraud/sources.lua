-- Card transactions, pushed to /ingest as they are authorised, and the request-time context
-- of a transaction being scored.

Location = Struct { Field("lat", Float64), Field("lon", Float64), Field("country", String) }

transactions = StreamSource {
  name = "transactions",
  description = "Card transactions as authorised",
  schema = {
    Field("user_id", String),
    Field("merchant", String),
    Field("timestamp", Timestamp),
    Field("amount", Float64),
    Field("category", String),
    Field("is_fraud", Bool),
    Field("location", Location),
    Field("items", Array(String)),
  },
  stream_config = PushConfig {},  -- records are pushed to POST /ingest (the default)
  batch_config = FileConfig { uri = "data/transactions.jsonl", file_format = "jsonl",
                              timestamp_field = "timestamp" },
  post_processor = function(record)
    record.merchant = string.lower(record.merchant)
    return record
  end,
  owner = "fraud-team@example.com",
  tags = { pii = "false" },
}

transaction_request = RequestSource {
  name = "transaction_request",
  schema = { Field("amount", Float64) },
  description = "The transaction being scored",
}
