for w in string.gmatch(string.rep('a', 100000), 'a*a*a*b') do end
