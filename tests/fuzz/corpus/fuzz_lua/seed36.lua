return function(r) r.x = (r.x or 0) + 1 return r end
