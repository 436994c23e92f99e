sluice.json.decode_max_depth(100000000)
