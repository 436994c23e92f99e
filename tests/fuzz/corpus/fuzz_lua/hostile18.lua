table.unpack({}, 1, 2^40)
