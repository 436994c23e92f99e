string.find('x', string.rep('(', 40))
