-- Entities of the fraud example. Files run in name order and share their globals, so the
-- later files refer to `user` and `merchant` directly.

user = Entity {
  name = "user",
  join_keys = { Field("user_id", String) },
  description = "A card holder",
  owner = "fraud-team@example.com",
  tags = { domain = "payments" },
}

merchant = Entity {
  name = "merchant",
  join_keys = { Field("merchant", String) },
  description = "A merchant accepting card payments",
  owner = "fraud-team@example.com",
}
