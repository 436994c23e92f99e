-- What the fraud model reads at authorisation time: views of two entities (user, merchant)
-- and a realtime view. A view may be named by a string.

FeatureService {
  name = "fraud_detection_feature_service",
  features = {
    transaction_amount_is_high,
    user_transaction_aggregates:select { "amount_mean_1d_1h", "amount_sum_7d_1h",
                                         "transaction_count_30d", "merchant_last_5_1d_1h" },
    user_last_transaction,
    "merchant_fraud_rate",
  },
  description = "Features for scoring a card transaction",
  tags = { model = "fraud-v3" },
}
