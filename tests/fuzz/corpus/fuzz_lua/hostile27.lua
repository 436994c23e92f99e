string.find(string.rep('x', 100000), '.-.-.-.-.-y')
