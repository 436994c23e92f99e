table.unpack({}, 1, 2e6)
