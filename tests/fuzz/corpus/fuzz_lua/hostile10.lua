local t = {} local ok = pcall(function() for i = 1, 1e9 do t[i] = {i} end end)
while true do end
