local ok, e = pcall(function() while true do end end) error('caught: ' .. tostring(e))
