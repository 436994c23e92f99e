-- Feature views over the transactions stream.

user_last_transaction = StreamFeatureView {
  name = "user_last_transaction",
  source = transactions,
  entities = { user },
  online = true, offline = true,
  feature_start_time = "2023-01-01T00:00:00Z",
  batch_schedule = "1d",
  ttl = "90d",
  features = {
    Attribute { column = "amount", type = Float64,
                description = "Amount of the latest transaction, in the card's currency",
                tags = { unit = "currency" } },
    Attribute { column = "merchant", type = String, name = "last_merchant" },
    Attribute("location", Location),
    Attribute("items", Array(String)),
  },
  description = "The user's latest transaction",
}

user_transaction_aggregates = StreamFeatureView {
  name = "user_transaction_aggregates",
  source = transactions,
  entities = { user },
  online = true, offline = true,
  feature_start_time = "2023-01-01T00:00:00Z",
  aggregation_interval = "1h",
  features = {
    Aggregate { column = "amount", fn = "sum", window = "1h" },
    Aggregate { column = "amount", fn = "sum", window = "1d" },
    Aggregate { column = "amount", fn = "sum", window = "7d" },
    Aggregate { column = "amount", fn = "sum", window = "1d", offset = "-1d" },
    Aggregate { column = "amount", fn = "mean", window = "1d" },
    Aggregate { column = "amount", fn = "max", window = "7d" },
    Aggregate { column = "amount", fn = "stddev_samp", window = "7d" },
    Aggregate { column = "amount", fn = "approx_percentile", percentile = 0.95, window = "30d" },
    Aggregate { column = "amount", fn = "count", window = "30d", name = "transaction_count_30d",
                description = "Transactions in the last 30 days", tags = { stage = "beta" } },
    Aggregate { column = "amount", fn = "count", window = LifetimeWindow(),
                name = "transaction_count_lifetime" },
    Aggregate { column = "merchant", fn = "last", n = 5, window = "1d" },
    Aggregate { column = "merchant", fn = "approx_count_distinct", window = "30d" },
    Aggregate { column = "category", fn = "last_distinct", n = 3, window = "7d" },
  },
  description = "Spending of a user over several windows",
  tags = { team = "fraud", stage = "production" },
}

merchant_fraud_rate = StreamFeatureView {
  name = "merchant_fraud_rate",
  source = transactions,
  entities = { merchant },
  online = true, offline = true,
  timestamp_field = "timestamp",
  -- no aggregation_interval: continuous mode, exact windows at request time
  transformation = function(record)
    if record.is_fraud == sluice.null then
      return nil
    end
    record.fraud = record.is_fraud and 1 or 0
    return record
  end,
  features = {
    Aggregate { column = "fraud", type = Int64, fn = "mean", window = "7d",
                name = "fraud_rate_7d" },
    Aggregate { column = "fraud", type = Int64, fn = "sum", window = "1d" },
    Aggregate { column = "amount", fn = "var_pop", window = "1d" },
  },
  description = "Share of a merchant's transactions later marked as fraud",
}

transaction_amount_is_high = RealtimeFeatureView {
  name = "transaction_amount_is_high",
  sources = { transaction_request, user_transaction_aggregates },
  features = { Attribute("transaction_amount_is_high", Int64) },
  transformation = function(request, inputs)
    local mean = inputs.user_transaction_aggregates.amount_mean_1d_1h
    local high = request.amount > 1000 or (mean ~= sluice.null and request.amount > 3 * mean)
    return { transaction_amount_is_high = high and 1 or 0 }
  end,
  description = "Whether the amount is high for this user",
}
