string.format('%99.99999f', 1)
