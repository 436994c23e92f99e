local s = string.rep('x', 1 << 24) while true do utf8.len(s) end
