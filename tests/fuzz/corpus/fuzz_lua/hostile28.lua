string.find(('a'):rep(26), ('a?'):rep(26) .. ('a'):rep(26))
