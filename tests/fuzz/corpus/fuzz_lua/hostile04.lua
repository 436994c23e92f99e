cjson.decode(string.rep('[', 400000) .. string.rep(']', 400000))
