string.gsub(string.rep('(', 100000), '%b()', '')
