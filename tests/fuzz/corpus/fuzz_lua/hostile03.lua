local j = cjson.new() j.decode_max_depth(1e8)
