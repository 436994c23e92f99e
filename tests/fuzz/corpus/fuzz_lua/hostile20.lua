local t = {} for i = 1, 1e5 do t[i] = '' end while true do table.concat(t) end
