cjson.encode_max_depth(1e8)
