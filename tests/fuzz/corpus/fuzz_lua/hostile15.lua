table.move({}, 1, 2^40, 2)
