return function(req, inputs) return { ok = req.user_id and 1 or 0 } end
