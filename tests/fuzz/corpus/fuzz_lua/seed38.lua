local user = Entity { name = 'user', join_keys = { Field('user_id', String) } }
return function(r) return cjson.encode({r.user_id, r.ts}) end
