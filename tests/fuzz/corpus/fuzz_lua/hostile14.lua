string.rep('', 2^40, '')
