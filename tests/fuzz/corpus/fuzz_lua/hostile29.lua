string.match(string.rep('a', 5000), '(.*)(.*)(.*)(.*)b')
