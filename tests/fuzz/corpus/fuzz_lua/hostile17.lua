table.concat({}, '', 1, 2^40)
