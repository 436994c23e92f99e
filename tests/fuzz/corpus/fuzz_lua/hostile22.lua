local s = string.rep('x', 1 << 24) while true do s:find('y', 1, true) end
