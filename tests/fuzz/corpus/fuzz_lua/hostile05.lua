local t = {} local x = t for i = 1, 250000 do x[1] = {} x = x[1] end cjson.encode(t)
