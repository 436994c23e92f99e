-- The definitions DSL of DESIGN §3; core/defs.md documents every constructor and the JSON
-- this prelude produces.
--
-- defs.c runs this chunk in the sandbox before a repository's files, with two arguments: the
-- debug library (used here to find where objects and functions are defined; it never reaches
-- user code) and `host`, helpers written in C (durations and times from core/timeutil.h,
-- aggregate resolution from core/agg.h, the JSON null). The chunk returns M (end of file).
--
-- Every library function used below is captured in a local first, so whatever user code does
-- to its globals cannot change how the repository is validated.

local debug, host = ...

local error, getmetatable, next, select, setmetatable, tostring, type =
    error, getmetatable, next, select, setmetatable, tostring, type
local rawget, rawlen, load = rawget, rawlen, load
local G = _G
local tointeger, mtype, mmax, mmin = math.tointeger, math.type, math.max, math.min
local sfmt, sfind, ssub, smatch, sbyte = string.format, string.find, string.sub, string.match,
    string.byte
local tsort, tconcat, tpack, tunpack = table.sort, table.concat, table.pack, table.unpack
local getinfo = debug.getinfo

-- ---------------------------------------------------------------------------------------
-- Canonical JSON trees. defs.c converts them with cJSON: ARR tables are arrays, OBJ tables
-- are ordered key/value pairs (table.pack of k1, v1, k2, v2...; nil values become null), MAP
-- tables are string-keyed objects written with sorted keys. NULL is JSON null anywhere.

local ARR, OBJ, MAP = {}, {}, {}

local function arr(t)
    return setmetatable(t, ARR)
end

local function obj(...)
    return setmetatable(tpack(...), OBJ)
end

local function map(t)
    local c = {}
    for k, v in next, t or {} do
        c[k] = v
    end
    return setmetatable(c, MAP)
end

-- ---------------------------------------------------------------------------------------
-- Positions and errors.

-- The first frame, above the constructor that calls this, that runs a repository file.
local function callsite()
    for level = 3, 40 do
        local ar = getinfo(level, "Sl")
        if not ar then
            break
        end
        if sbyte(ar.source, 1) == 64 and ar.currentline > 0 then -- '@'
            return {file = ssub(ar.source, 2), line = ar.currentline}
        end
    end
    return {file = "?", line = 0}
end

local function fail(pos, fmt, ...)
    error(sfmt("%s:%d: ", pos.file, pos.line) .. sfmt(fmt, ...), 0)
end

local function is_ident(s)
    return type(s) == "string" and smatch(s, "^[A-Za-z_][A-Za-z0-9_]*$") ~= nil
end

-- Levenshtein distance, for "did you mean" hints.
local function distance(a, b)
    local prev, cur = {}, {}
    for j = 0, #b do
        prev[j] = j
    end
    for i = 1, #a do
        cur[0] = i
        local ca = sbyte(a, i)
        for j = 1, #b do
            local cost = ca == sbyte(b, j) and 0 or 1
            cur[j] = mmin(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev, cur = cur, prev
    end
    return prev[#b]
end

-- " (did you mean `x`?)" for the closest of `names` (a list), or "".
local function suggest(word, names)
    if type(word) ~= "string" then
        return ""
    end
    local best, bestd = nil, mmax(1, mmin(3, #word // 3))
    for _, n in next, names do
        local d = distance(word, n)
        if d <= bestd and (best == nil or d < bestd or n < best) then
            best, bestd = n, d
        end
    end
    return best and sfmt(" (did you mean `%s`?)", best) or ""
end

-- ---------------------------------------------------------------------------------------
-- Handles: what constructors return. A handle is an empty table whose metatable reads
-- through to a few public fields and refuses writes; `info` maps it to its record.

local info = setmetatable({}, {__mode = "k"})
local sealed = false

local function handle(rec, public)
    local h = {}
    setmetatable(h, {
        __index = public,
        __newindex = function()
            error(sfmt("%s is read-only", rec.label), 2)
        end,
        __tostring = function()
            return rec.label
        end,
        __metatable = "sluice object",
    })
    info[h] = rec
    rec.handle = h
    return h
end

local function describe(v)
    local r = info[v]
    if r then
        return r.label
    end
    local t = type(v)
    if t == "string" then
        return #v > 40 and sfmt("string %q...", ssub(v, 1, 40)) or sfmt("string %q", v)
    elseif t == "number" or t == "boolean" then
        return t .. " " .. tostring(v)
    end
    return t
end

-- ---------------------------------------------------------------------------------------
-- Arguments.

local function one_table(pos, ctor, ...)
    local a = ...
    if select("#", ...) ~= 1 or type(a) ~= "table" or info[a] then
        fail(pos, "%s expects one table of named arguments: %s { name = ..., ... }", ctor, ctor)
    end
    if getmetatable(a) ~= nil then
        fail(pos, "%s: the argument table must be a plain table", ctor)
    end
    return a
end

-- Checks the keys of a: all strings, all in `allowed` (a list), `required` present.
-- Returns the label used in messages: "Ctor `name`" or "Ctor".
local function check_args(pos, ctor, a, allowed, required)
    local label = ctor
    local nm = rawget(a, "name")
    if type(nm) == "string" then
        label = sfmt("%s `%s`", ctor, nm)
    end
    local set = {}
    for _, k in next, allowed do
        set[k] = true
    end
    local keys = {}
    for k in next, a do
        if type(k) ~= "string" then
            fail(pos, "%s: unexpected positional argument %s; arguments are written name = value",
                 label, describe(k))
        end
        keys[#keys + 1] = k
    end
    tsort(keys)
    for _, k in next, keys do
        if not set[k] then
            fail(pos, "%s: unknown argument `%s`%s", label, k, suggest(k, allowed))
        end
    end
    for _, k in next, required do
        if rawget(a, k) == nil then
            fail(pos, "%s: missing required argument `%s`", label, k)
        end
    end
    return label
end

local function opt_string(pos, label, a, k)
    local v = rawget(a, k)
    if v ~= nil and type(v) ~= "string" then
        fail(pos, "%s: `%s` must be a string, got %s", label, k, describe(v))
    end
    return v
end

local function req_name(pos, label, a)
    local v = rawget(a, "name")
    if not is_ident(v) then
        fail(pos, "%s: `name` must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got %s", label,
             describe(v))
    end
    return v
end

local function opt_bool(pos, label, a, k, default)
    local v = rawget(a, k)
    if v == nil then
        return default
    end
    if type(v) ~= "boolean" then
        fail(pos, "%s: `%s` must be true or false, got %s", label, k, describe(v))
    end
    return v
end

local function opt_tags(pos, label, a)
    local v = rawget(a, "tags")
    if v == nil then
        return {}
    end
    if type(v) ~= "table" or info[v] then
        fail(pos, "%s: `tags` must be a table of strings, e.g. tags = { release = \"production\" }",
             label)
    end
    for k, x in next, v do
        if type(k) ~= "string" or type(x) ~= "string" then
            fail(pos, "%s: `tags` must map strings to strings, got %s = %s", label, describe(k),
                 describe(x))
        end
    end
    return v
end

-- A duration string, normalised: returns text, ns (or nil, nil when absent).
local function opt_duration(pos, label, a, k)
    local v = rawget(a, k)
    if v == nil then
        return nil, nil
    end
    local ns = type(v) == "string" and host.duration(v) or nil
    if not ns then
        fail(pos, "%s: `%s` must be a duration such as \"10m\", \"1h\" or \"30d\", got %s", label,
             k, describe(v))
    end
    return host.format_duration(ns), ns
end

local function opt_time(pos, label, a, k)
    local v = rawget(a, k)
    if v == nil then
        return nil
    end
    local ns = type(v) == "string" and host.time(v) or nil
    if not ns then
        fail(pos, "%s: `%s` must be an RFC 3339 time such as \"2022-01-01T00:00:00Z\", got %s",
             label, k, describe(v))
    end
    return host.format_time(ns)
end

-- A list (a sequence, not a handle). Returns it.
local function list(pos, label, k, v, nonempty)
    if type(v) ~= "table" or info[v] or getmetatable(v) ~= nil then
        fail(pos, "%s: `%s` must be a list, e.g. %s = { ... }, got %s", label, k, k, describe(v))
    end
    local n = rawlen(v)
    local count = 0
    for key in next, v do
        count = count + 1
        if mtype(key) ~= "integer" or key < 1 or key > n then
            fail(pos, "%s: `%s` must be a list, but has the key %s", label, k, describe(key))
        end
    end
    if count ~= n then
        fail(pos, "%s: `%s` has holes (nil entries)", label, k)
    end
    if nonempty and n == 0 then
        fail(pos, "%s: `%s` must not be empty", label, k)
    end
    return v
end

-- ---------------------------------------------------------------------------------------
-- Function sources.

local texts = {}      -- repository file name -> text
local linestarts = {} -- file name -> offsets of line starts

local function line_starts(file)
    local ls = linestarts[file]
    if ls == nil then
        local text = texts[file]
        ls = {1}
        local p = 1
        while true do
            local q = sfind(text, "\n", p, true)
            if not q then
                break
            end
            ls[#ls + 1] = q + 1
            p = q + 1
        end
        linestarts[file] = ls
    end
    return ls
end

local function compiles(s)
    return load("return " .. s, "=(source)", "t") ~= nil or load(s, "=(source)", "t") ~= nil
end

-- The text of a function defined on lines l1..l2 of file: from its `function` keyword to its
-- closing `end` when that can be told apart from other code on those lines, else the lines.
local function function_text(file, l1, l2)
    local text = texts[file]
    local ls = line_starts(file)
    local s = ls[l1]
    if s == nil or l2 < l1 then
        return ""
    end
    local e = ls[l2 + 1] and ls[l2 + 1] - 2 or #text
    local chunk = ssub(text, s, e)
    chunk = (smatch(chunk, "^(.-)\r$")) or chunk
    local first_end = sfind(chunk, "\n", 1, true) or #chunk + 1
    local last_start = 1
    do
        local p = 1
        while true do
            local q = sfind(chunk, "\n", p, true)
            if not q then
                break
            end
            last_start = q + 1
            p = q + 1
        end
    end
    local starts, ends = {}, {}
    local p = 1
    while #starts < 8 do
        local a, b = sfind(chunk, "%f[%w_]function%f[^%w_]", p)
        if not a or a >= first_end then
            break
        end
        starts[#starts + 1] = a
        p = b + 1
    end
    p = last_start
    while true do
        local _, b = sfind(chunk, "%f[%w_]end%f[^%w_]", p)
        if not b then
            break
        end
        ends[#ends + 1] = b
        p = b + 1
    end
    for _, s0 in next, starts do
        for i = #ends, mmax(1, #ends - 7), -1 do
            local e0 = ends[i]
            if e0 > s0 then
                local cand = ssub(chunk, s0, e0)
                if compiles(cand) then
                    return cand
                end
            end
        end
    end
    return chunk
end

-- A user function argument: {fn, file, line, source} or nil when absent.
local function opt_function(pos, label, a, k, required)
    local f = rawget(a, k)
    if f == nil then
        if required then
            fail(pos, "%s: missing required argument `%s`", label, k)
        end
        return nil
    end
    if type(f) ~= "function" then
        fail(pos, "%s: `%s` must be a function, got %s", label, k, describe(f))
    end
    local ar = getinfo(f, "S")
    local file = sbyte(ar.source, 1) == 64 and ssub(ar.source, 2) or nil
    if ar.what ~= "Lua" or file == nil or texts[file] == nil then
        fail(pos, "%s: `%s` must be a Lua function written in the repository", label, k)
    end
    return {fn = f, file = file, line = ar.linedefined,
            source = function_text(file, ar.linedefined, ar.lastlinedefined)}
end

local function function_json(f)
    if f == nil then
        return nil
    end
    return obj("source", f.source, "file", f.file, "line", f.line)
end

-- ---------------------------------------------------------------------------------------
-- Types.

local DISPLAY = {string = "String", int64 = "Int64", int32 = "Int32", float64 = "Float64",
                 float32 = "Float32", boolean = "Bool", timestamp = "Timestamp"}

local function type_name(t)
    if t.name == "array" then
        return "Array(" .. type_name(t.elem) .. ")"
    elseif t.name == "map" then
        return "Map(String, " .. type_name(t.value) .. ")"
    elseif t.name == "struct" then
        local parts = {}
        for i, f in next, t.fields do
            parts[i] = f.name .. ": " .. type_name(f.type)
        end
        return "Struct{" .. tconcat(parts, ", ") .. "}"
    end
    return DISPLAY[t.name]
end

local function type_equal(a, b)
    if a.name ~= b.name then
        return false
    elseif a.name == "array" then
        return type_equal(a.elem, b.elem)
    elseif a.name == "map" then
        return type_equal(a.value, b.value)
    elseif a.name == "struct" then
        if #a.fields ~= #b.fields then
            return false
        end
        for i, f in next, a.fields do
            local g = b.fields[i]
            if f.name ~= g.name or not type_equal(f.type, g.type) then
                return false
            end
        end
    end
    return true
end

local function type_json(t)
    if t.name == "array" then
        return obj("type", "array", "elementType", type_json(t.elem))
    elseif t.name == "map" then
        return obj("type", "map", "keyType", obj("type", "string"), "valueType", type_json(t.value))
    elseif t.name == "struct" then
        local fs = {}
        for i, f in next, t.fields do
            fs[i] = obj("name", f.name, "dataType", type_json(f.type))
        end
        return obj("type", "struct", "fields", arr(fs))
    end
    return obj("type", t.name)
end

local function new_type(t)
    local rec = {kind = "type", type = t, label = type_name(t)}
    return handle(rec, {})
end

-- The type behind handle v, or fail.
local function as_type(pos, what, v)
    local r = info[v]
    if not r or r.kind ~= "type" then
        fail(pos, "%s must be a type (String, Int64, Int32, Float64, Float32, Bool, Timestamp, " ..
             "Array(T), Map(String, T), Struct{...}), got %s", what, describe(v))
    end
    return r.type
end

local function Array(...)
    local pos = callsite()
    if select("#", ...) ~= 1 then
        fail(pos, "Array takes one element type: Array(Int64)")
    end
    return new_type({name = "array", elem = as_type(pos, "Array: the element type", ...)})
end

local function Map(...)
    local pos = callsite()
    local k, v = ...
    if select("#", ...) ~= 2 then
        fail(pos, "Map takes a key and a value type: Map(String, Int64)")
    end
    local kt = as_type(pos, "Map: the key type", k)
    if kt.name ~= "string" then
        fail(pos, "Map: keys must be String, got %s", type_name(kt))
    end
    return new_type({name = "map", value = as_type(pos, "Map: the value type", v)})
end

-- Fields: handles of {name, type}. `fields` turns a list of them into a schema.
local function Field(...)
    local pos = callsite()
    local name, t = ...
    if select("#", ...) ~= 2 then
        fail(pos, "Field takes a name and a type: Field(\"user_id\", String)")
    end
    if not is_ident(name) then
        fail(pos, "Field: the name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got %s",
             describe(name))
    end
    local ft = as_type(pos, sfmt("Field `%s`: the type", name), t)
    local rec = {kind = "field", name = name, type = ft, pos = pos,
                 label = sfmt("Field(\"%s\", %s)", name, type_name(ft))}
    return handle(rec, {name = name})
end

local function fields(pos, label, k, v, nonempty)
    local out, index = {}, {}
    for i, f in next, list(pos, label, k, v, nonempty) do
        local r = info[f]
        if not r or r.kind ~= "field" then
            fail(pos, "%s: `%s`[%d] must be a Field(name, Type), got %s", label, k, i, describe(f))
        end
        if index[r.name] then
            fail(r.pos, "%s: duplicate field `%s` in `%s`", label, r.name, k)
        end
        out[i] = {name = r.name, type = r.type}
        index[r.name] = r.type
    end
    return out, index
end

local function fields_json(fs)
    local out = {}
    for i, f in next, fs do
        out[i] = obj("name", f.name, "dataType", type_json(f.type))
    end
    return arr(out)
end

local function Struct(...)
    local pos = callsite()
    local a = ...
    if select("#", ...) ~= 1 or type(a) ~= "table" or info[a] then
        fail(pos, "Struct takes a list of fields: Struct { Field(\"a\", Int64), ... }")
    end
    local fs = fields(pos, "Struct", "fields", a, true)
    return new_type({name = "struct", fields = fs})
end

-- ---------------------------------------------------------------------------------------
-- The repository: objects by namespace, in definition order and by name.

local NS_NAME = {entity = "entity", source = "source", view = "feature view",
                 service = "feature service"}
local by_name = {entity = {}, source = {}, view = {}, service = {}}
local objects = {entity = {}, source = {}, view = {}, service = {}}

local function check_unique(rec)
    local prev = by_name[rec.ns][rec.name]
    if prev then
        fail(rec.pos, "%s: duplicate %s name `%s` (first defined at %s:%d)", rec.label,
             NS_NAME[rec.ns], rec.name, prev.pos.file, prev.pos.line)
    end
end

local function register(rec)
    check_unique(rec)
    by_name[rec.ns][rec.name] = rec
    objects[rec.ns][#objects[rec.ns] + 1] = rec
end

local function check_open(pos, ctor)
    if sealed then
        fail(pos, "%s: definitions can only be made while the repository is evaluated", ctor)
    end
end

-- A list of handles of the given record kinds; returns their records.
local function records(pos, label, k, v, kinds, what, nonempty)
    local out, seen = {}, {}
    for i, h in next, list(pos, label, k, v, nonempty) do
        local r = info[h]
        if not r or not kinds[r.kind] then
            fail(pos, "%s: `%s`[%d] must be %s, got %s", label, k, i, what, describe(h))
        end
        if seen[r] then
            fail(pos, "%s: `%s` lists %s twice", label, k, r.label)
        end
        seen[r] = true
        out[i] = r
    end
    return out
end

-- ---------------------------------------------------------------------------------------
-- Entity

local ENTITY_ARGS = {"name", "join_keys", "description", "tags", "owner"}

local function Entity(...)
    local pos = callsite()
    check_open(pos, "Entity")
    local a = one_table(pos, "Entity", ...)
    local label = check_args(pos, "Entity", a, ENTITY_ARGS, {"name", "join_keys"})
    local rec = {kind = "entity", ns = "entity", pos = pos, label = label}
    rec.name = req_name(pos, label, a)
    rec.keys = fields(pos, label, "join_keys", rawget(a, "join_keys"), true)
    rec.description = opt_string(pos, label, a, "description")
    rec.tags = opt_tags(pos, label, a)
    rec.owner = opt_string(pos, label, a, "owner")
    register(rec)
    rec.json = obj("name", rec.name, "join_keys", fields_json(rec.keys),
                   "description", rec.description, "tags", map(rec.tags), "owner", rec.owner,
                   "file", pos.file, "line", pos.line)
    local names = {}
    for i, f in next, rec.keys do
        names[i] = f.name
    end
    return handle(rec, {name = rec.name, join_keys = names})
end

-- ---------------------------------------------------------------------------------------
-- Sources

local FILE_ARGS = {"uri", "file_format", "timestamp_field"}
local FORMATS = {csv = true, jsonl = true, parquet = true}

local function FileConfig(...)
    local pos = callsite()
    local a = one_table(pos, "FileConfig", ...)
    local label = check_args(pos, "FileConfig", a, FILE_ARGS, {"uri", "file_format"})
    local uri = opt_string(pos, label, a, "uri")
    if uri == "" then
        fail(pos, "%s: `uri` must not be empty", label)
    end
    local ff = rawget(a, "file_format")
    if not FORMATS[ff] then
        fail(pos, "%s: `file_format` must be \"csv\", \"jsonl\" or \"parquet\", got %s", label,
             describe(ff))
    end
    local ts = opt_string(pos, label, a, "timestamp_field")
    local rec = {kind = "file_config", pos = pos, label = "FileConfig", uri = uri, format = ff,
                 timestamp_field = ts}
    return handle(rec, {uri = uri, file_format = ff, timestamp_field = ts})
end

-- The stream config of a StreamSource: records are pushed to the Stream Ingest API (POST
-- /ingest), the only way records reach a stream source (and so also the default). Written
-- `PushConfig {}` or `PushConfig()`, as in Tecton's `PushConfig()`; it takes no arguments.
local function PushConfig(...)
    local pos = callsite()
    local n, a = select("#", ...), ...
    if n > 1 or (n == 1 and (type(a) ~= "table" or info[a])) then
        fail(pos, "PushConfig takes no arguments: stream_config = PushConfig {}")
    end
    if n == 1 then
        check_args(pos, "PushConfig", one_table(pos, "PushConfig", ...), {}, {})
    end
    return handle({kind = "push_config", pos = pos, label = "PushConfig"}, {})
end

local STREAM_SOURCE_ARGS = {"name", "schema", "stream_config", "batch_config", "post_processor",
                            "description", "tags", "owner"}

local function StreamSource(...)
    local pos = callsite()
    check_open(pos, "StreamSource")
    local a = one_table(pos, "StreamSource", ...)
    local label = check_args(pos, "StreamSource", a, STREAM_SOURCE_ARGS, {"name", "schema"})
    local rec = {kind = "stream_source", ns = "source", pos = pos, label = label}
    rec.name = req_name(pos, label, a)
    rec.schema, rec.index = fields(pos, label, "schema", rawget(a, "schema"), true)
    local stamps = {}
    for _, f in next, rec.schema do
        if f.type.name == "timestamp" then
            stamps[#stamps + 1] = f.name
        end
    end
    rec.stamps = stamps
    rec.timestamp_field = #stamps == 1 and stamps[1] or nil
    local sc = rawget(a, "stream_config")
    if sc ~= nil and (not info[sc] or info[sc].kind ~= "push_config") then
        fail(pos, "%s: `stream_config` must be PushConfig {} (records pushed to POST /ingest), " ..
             "got %s", label, describe(sc))
    end
    local bc = rawget(a, "batch_config")
    if bc ~= nil then
        local r = info[bc]
        if not r or r.kind ~= "file_config" then
            fail(pos, "%s: `batch_config` must be a FileConfig { ... }, got %s", label,
                 describe(bc))
        end
        local ts = r.timestamp_field
        if ts ~= nil then
            local t = rec.index[ts]
            if t == nil then
                fail(r.pos, "%s: batch_config timestamp_field `%s` is not in the schema%s", label,
                     ts, suggest(ts, stamps))
            elseif t.name ~= "timestamp" then
                fail(r.pos, "%s: batch_config timestamp_field `%s` has type %s, not Timestamp",
                     label, ts, type_name(t))
            end
        end
        rec.batch = obj("uri", r.uri, "file_format", r.format, "timestamp_field", ts)
    end
    rec.post_processor = opt_function(pos, label, a, "post_processor")
    rec.description = opt_string(pos, label, a, "description")
    rec.tags = opt_tags(pos, label, a)
    rec.owner = opt_string(pos, label, a, "owner")
    register(rec)
    rec.json = obj("kind", "stream", "name", rec.name, "schema", fields_json(rec.schema),
                   "timestamp_field", rec.timestamp_field, "batch_config", rec.batch,
                   "post_processor", function_json(rec.post_processor),
                   "description", rec.description, "tags", map(rec.tags), "owner", rec.owner,
                   "file", pos.file, "line", pos.line)
    return handle(rec, {name = rec.name})
end

local REQUEST_SOURCE_ARGS = {"name", "schema", "description", "tags", "owner"}

local function RequestSource(...)
    local pos = callsite()
    check_open(pos, "RequestSource")
    local a = one_table(pos, "RequestSource", ...)
    local label = check_args(pos, "RequestSource", a, REQUEST_SOURCE_ARGS, {"name", "schema"})
    local rec = {kind = "request_source", ns = "source", pos = pos, label = label}
    rec.name = req_name(pos, label, a)
    rec.schema, rec.index = fields(pos, label, "schema", rawget(a, "schema"), true)
    rec.description = opt_string(pos, label, a, "description")
    rec.tags = opt_tags(pos, label, a)
    rec.owner = opt_string(pos, label, a, "owner")
    register(rec)
    rec.json = obj("kind", "request", "name", rec.name, "schema", fields_json(rec.schema),
                   "timestamp_field", nil, "batch_config", nil, "post_processor", nil,
                   "description", rec.description, "tags", map(rec.tags), "owner", rec.owner,
                   "file", pos.file, "line", pos.line)
    return handle(rec, {name = rec.name})
end

-- ---------------------------------------------------------------------------------------
-- Features

local function LifetimeWindow(...)
    local pos = callsite()
    if select("#", ...) ~= 0 then
        fail(pos, "LifetimeWindow takes no arguments")
    end
    return handle({kind = "lifetime", label = "LifetimeWindow()"}, {})
end

local ATTRIBUTE_ARGS = {"column", "type", "name", "description", "tags"}

-- A feature's own `description` and `tags` (optional; metadata_options
-- include_feature_descriptions / include_feature_tags return them).
local function feature_doc(pos, label, a, rec)
    rec.description = opt_string(pos, label, a, "description")
    rec.tags = rawget(a, "tags") ~= nil and opt_tags(pos, label, a) or nil
    return rec
end

-- The canonical JSON of a feature: the pairs given, then its description and tags when set.
local function feature_json(f, ...)
    local kv = tpack(...)
    local n = kv.n
    if f.description ~= nil then
        kv[n + 1], kv[n + 2], n = "description", f.description, n + 2
    end
    if f.tags ~= nil then
        kv[n + 1], kv[n + 2], n = "tags", map(f.tags), n + 2
    end
    kv.n = n
    return setmetatable(kv, OBJ)
end

local function Attribute(...)
    local pos = callsite()
    local n = select("#", ...)
    local a = ...
    local column, t, name
    local label
    if n == 1 and type(a) == "table" and not info[a] then
        label = check_args(pos, "Attribute", a, ATTRIBUTE_ARGS, {"column"})
        column, name = rawget(a, "column"), rawget(a, "name")
        t = rawget(a, "type")
    elseif n == 1 or n == 2 then
        column, t = ...
    else
        fail(pos, "Attribute takes a column and a type: Attribute(\"clicked\", Int64) or " ..
             "Attribute { column = \"clicked\", type = Int64, name = \"clicks\" }")
    end
    label = sfmt("Attribute `%s`", tostring(column))
    if not is_ident(column) then
        fail(pos, "Attribute: the column must be an identifier, got %s", describe(column))
    end
    if name ~= nil and not is_ident(name) then
        fail(pos, "%s: `name` must be an identifier, got %s", label, describe(name))
    end
    local ft = t ~= nil and as_type(pos, label .. ": the type", t) or nil
    local rec = {kind = "attribute", pos = pos, label = label, column = column, type = ft,
                 name = name}
    if n == 1 and type(a) == "table" and not info[a] then
        feature_doc(pos, label, a, rec)
    end
    return handle(rec, {column = column, name = name or column})
end

local AGGREGATE_ARGS = {"column", "fn", "window", "offset", "n", "precision", "percentile",
                        "name", "type", "description", "tags"}

local function Aggregate(...)
    local pos = callsite()
    local a = one_table(pos, "Aggregate", ...)
    local label = check_args(pos, "Aggregate", a, AGGREGATE_ARGS, {"column", "fn", "window"})
    local rec = {kind = "aggregate", pos = pos}
    rec.column = rawget(a, "column")
    if not is_ident(rec.column) then
        fail(pos, "%s: `column` must be an identifier, got %s", label, describe(rec.column))
    end
    rec.label = sfmt("Aggregate `%s`", rawget(a, "name") or rec.column)
    label = rec.label
    rec.fn = opt_string(pos, label, a, "fn")
    rec.name = rawget(a, "name")
    if rec.name ~= nil and not is_ident(rec.name) then
        fail(pos, "%s: `name` must be an identifier, got %s", label, describe(rec.name))
    end
    local w = rawget(a, "window")
    local wr = info[w]
    if wr and wr.kind == "lifetime" then
        rec.window = "lifetime"
    elseif type(w) == "string" and (w == "lifetime" or host.duration(w)) then
        rec.window = w
    else
        fail(pos, "%s: `window` must be a duration such as \"1h\", \"lifetime\" or " ..
             "LifetimeWindow(), got %s", label, describe(w))
    end
    local off = rawget(a, "offset")
    if off ~= nil then
        local body = type(off) == "string" and (smatch(off, "^%-(.+)$") or smatch(off, "^(0+%a*)$"))
        if not body or not (host.duration(body) or smatch(body, "^0+%a*$")) then
            fail(pos, "%s: `offset` must be a duration <= 0 such as \"-1h\", got %s", label,
                 describe(off))
        end
        if rec.window == "lifetime" then
            fail(pos, "%s: a lifetime window takes no offset", label)
        end
        rec.offset = off
    end
    for _, k in next, {"n", "precision"} do
        local v = rawget(a, k)
        if v ~= nil and tointeger(v) == nil then
            fail(pos, "%s: `%s` must be an integer, got %s", label, k, describe(v))
        end
        rec[k] = v ~= nil and tointeger(v) or nil
    end
    local p = rawget(a, "percentile")
    if p ~= nil and type(p) ~= "number" then
        fail(pos, "%s: `percentile` must be a number between 0 and 1, got %s", label, describe(p))
    end
    rec.percentile = p
    local t = rawget(a, "type")
    rec.type = t ~= nil and as_type(pos, label .. ": `type`", t) or nil
    feature_doc(pos, label, a, rec)
    return handle(rec, {column = rec.column, fn = rec.fn, name = rec.name})
end

-- ---------------------------------------------------------------------------------------
-- Feature views

-- Adds the join keys of entity records `ents` to keys/jk (name -> {type, entity}).
local function add_join_keys(pos, label, ents, keys, jk)
    for _, e in next, ents do
        for _, k in next, e.keys do
            local prev = jk[k.name]
            if prev == nil then
                jk[k.name] = {type = k.type, entity = e.name}
                keys[#keys + 1] = k
            elseif not type_equal(prev.type, k.type) then
                fail(pos, "%s: join key `%s` is %s in entity `%s` but %s in entity `%s`", label,
                     k.name, type_name(prev.type), prev.entity, type_name(k.type), e.name)
            end
        end
    end
end

local function names_json(recs)
    local out = {}
    for i, r in next, recs do
        out[i] = r.name
    end
    return arr(out)
end

-- The input type of a feature's column: the declared type when a transformation produces
-- the rows (or the column is not in the schema), else the schema's.
local function column_type(view, f, what)
    local st = view.source.index[f.column]
    if view.transformation then
        if f.type then
            return f.type
        end
        if st then
            return st
        end
        fail(f.pos, "%s: %s: column `%s` is not in the schema of %s; declare its type " ..
             "(type = ...) since the transformation produces it", view.label, f.label, f.column,
             view.source.label)
    end
    if not st then
        local names = {}
        for i, x in next, view.source.schema do
            names[i] = x.name
        end
        fail(f.pos, "%s: %s: column `%s` is not in the schema of %s%s", view.label, f.label,
             f.column, view.source.label, suggest(f.column, names))
    end
    if f.type and not type_equal(f.type, st) then
        fail(f.pos, "%s: %s is declared %s but `%s` is %s in %s", view.label, f.label,
             type_name(f.type), f.column, type_name(st), view.source.label)
    end
    return st
end

local function resolve_aggregate(view, f, interval_ns)
    local t = column_type(view, f, "Aggregate")
    local params = {"n", f.n, "precision", f.precision, "percentile", f.percentile}
    local pj = {}
    for i = 1, #params, 2 do
        if params[i + 1] ~= nil then
            pj[#pj + 1] = params[i]
            pj[#pj + 1] = params[i + 1]
        end
    end
    local partial = {"kind", "aggregate"}
    if f.name then
        partial[#partial + 1] = "name"
        partial[#partial + 1] = f.name
    end
    for _, kv in next, {{"column", f.column}, {"function", f.fn},
                        {"params", obj(tunpack(pj))}, {"window", f.window},
                        {"offset", f.offset}, {"input_type", type_json(t)}} do
        if kv[2] ~= nil then
            partial[#partial + 1] = kv[1]
            partial[#partial + 1] = kv[2]
        end
    end
    local r, msg = host.agg_resolve(obj(tunpack(partial)), interval_ns)
    if not r then
        -- agg.c names the feature; drop its placeholder for a feature without a name yet
        msg = smatch(msg, "^feature `aggregate of [^`]*`: (.*)$") or msg
        fail(f.pos, "%s: %s: %s", view.label, f.label, msg)
    end
    -- params: exactly the parameters the function takes, defaults filled ({} when none), the
    -- shape sl_agg_spec_from_cjson reads back.
    return {name = r.name, pos = f.pos, label = f.label,
            json = feature_json(f, "kind", "aggregate", "name", r.name, "column", r.column,
                                "function", r["function"], "params", r.params or obj(),
                                "window", r.window, "offset", r.offset,
                                "input_type", r.input_type, "dataType", r.dataType)}
end

-- Resolves the feature handles of a view; returns {name, json, pos, label} records.
local function view_features(view, hs, realtime)
    local out, seen = {}, {}
    local nattr, nagg = 0, 0
    for i, h in next, hs do
        local f = info[h]
        if not f or (f.kind ~= "attribute" and f.kind ~= "aggregate") then
            fail(view.pos, "%s: `features`[%d] must be an Attribute or an Aggregate, got %s",
                 view.label, i, describe(h))
        end
        local feat
        if f.kind == "attribute" then
            nattr = nattr + 1
            local t
            if realtime then
                if not f.type then
                    fail(f.pos, "%s: %s: declare its type: Attribute(\"%s\", Float64)", view.label,
                         f.label, f.column)
                end
                t = f.type
            else
                t = column_type(view, f, "Attribute")
            end
            local name = f.name or f.column
            feat = {name = name, pos = f.pos, label = f.label,
                    json = feature_json(f, "kind", "attribute", "name", name,
                                        "column", f.column, "dataType", type_json(t))}
        else
            if realtime then
                fail(f.pos, "%s: realtime views compute Attribute features only, not %s",
                     view.label, f.label)
            end
            nagg = nagg + 1
            feat = resolve_aggregate(view, f, view.interval_ns or 0)
        end
        if seen[feat.name] then
            fail(feat.pos, "%s: duplicate feature name `%s`%s", view.label, feat.name,
                 f.kind == "aggregate" and " (set name = ... on one of them)" or "")
        end
        if view.jk and view.jk[feat.name] then
            fail(feat.pos, "%s: feature `%s` has the name of a join key", view.label, feat.name)
        end
        seen[feat.name] = true
        out[i] = feat
    end
    if nattr > 0 and nagg > 0 then
        fail(view.pos, "%s: a view has either Attribute or Aggregate features, not both; " ..
             "split it in two views", view.label)
    end
    return out, nagg > 0
end

local function features_json(feats)
    local out = {}
    for i, f in next, feats do
        out[i] = f.json
    end
    return arr(out)
end

local function select_features(self, ...)
    local pos = callsite()
    local view = info[self]
    if not view or (view.kind ~= "stream_view" and view.kind ~= "realtime_view") then
        fail(pos, "select must be called on a feature view: view:select{\"feature\", ...}")
    end
    local names = ...
    if type(names) ~= "table" then
        names = {...}
    elseif select("#", ...) ~= 1 then
        fail(pos, "%s: select takes a list of feature names: view:select{\"a\", \"b\"}", view.label)
    end
    list(pos, view.label .. ": select", "features", names, true)
    local have, all = {}, {}
    for i, f in next, view.features do
        have[f.name] = true
        all[i] = f.name
    end
    local out, seen = {}, {}
    for i, n in next, names do
        if type(n) ~= "string" or not have[n] then
            fail(pos, "%s: select: no feature %s%s", view.label,
                 type(n) == "string" and sfmt("`%s`", n) or describe(n), suggest(n, all))
        end
        if seen[n] then
            fail(pos, "%s: select: `%s` is listed twice", view.label, n)
        end
        seen[n] = true
        out[i] = n
    end
    local rec = {kind = "selection", pos = pos, view = view, names = out,
                 label = sfmt("%s:select{...}", view.label)}
    return handle(rec, {})
end

local STREAM_VIEW_ARGS = {"name", "source", "entities", "online", "offline", "feature_start_time",
                          "batch_schedule", "ttl", "timestamp_field", "aggregation_interval",
                          "transformation", "features", "description", "tags", "owner"}

local function StreamFeatureView(...)
    local pos = callsite()
    check_open(pos, "StreamFeatureView")
    local a = one_table(pos, "StreamFeatureView", ...)
    local label = check_args(pos, "StreamFeatureView", a, STREAM_VIEW_ARGS,
                             {"name", "source", "entities", "features"})
    local view = {kind = "stream_view", ns = "view", pos = pos, label = label}
    view.name = req_name(pos, label, a)
    check_unique(view)
    local src = info[rawget(a, "source")]
    if not src or src.kind ~= "stream_source" then
        fail(pos, "%s: `source` must be a StreamSource, got %s", label,
             describe(rawget(a, "source")))
    end
    view.source = src
    view.entities = records(pos, label, "entities", rawget(a, "entities"), {entity = true},
                            "an Entity", true)
    view.online = opt_bool(pos, label, a, "online", false)
    view.offline = opt_bool(pos, label, a, "offline", false)
    view.feature_start_time = opt_time(pos, label, a, "feature_start_time")
    view.batch_schedule = opt_duration(pos, label, a, "batch_schedule")
    view.ttl = opt_duration(pos, label, a, "ttl")
    view.interval, view.interval_ns = opt_duration(pos, label, a, "aggregation_interval")
    view.transformation = opt_function(pos, label, a, "transformation")
    view.description = opt_string(pos, label, a, "description")
    view.tags = opt_tags(pos, label, a)
    view.owner = opt_string(pos, label, a, "owner")

    local ts = opt_string(pos, label, a, "timestamp_field")
    if ts == nil then
        if #src.stamps ~= 1 then
            fail(pos, "%s: `timestamp_field` is required: %s has %s", label, src.label,
                 #src.stamps == 0 and "no Timestamp field"
                 or "several Timestamp fields (" .. tconcat(src.stamps, ", ") .. ")")
        end
        ts = src.stamps[1]
    elseif src.index[ts] == nil then
        fail(pos, "%s: timestamp_field `%s` is not in the schema of %s%s", label, ts, src.label,
             suggest(ts, src.stamps))
    elseif src.index[ts].name ~= "timestamp" then
        fail(pos, "%s: timestamp_field `%s` has type %s in %s, not Timestamp", label, ts,
             type_name(src.index[ts]), src.label)
    end
    view.timestamp_field = ts

    view.keys, view.jk = {}, {}
    add_join_keys(pos, label, view.entities, view.keys, view.jk)
    for _, k in next, view.keys do
        local st = src.index[k.name]
        local ent = view.jk[k.name].entity
        if st == nil then
            fail(pos, "%s: join key `%s` of entity `%s` is not in the schema of %s", label,
                 k.name, ent, src.label)
        elseif not type_equal(st, k.type) then
            fail(pos, "%s: join key `%s` is %s in entity `%s` but %s in %s", label, k.name,
                 type_name(k.type), ent, type_name(st), src.label)
        end
    end

    local hs = list(pos, label, "features", rawget(a, "features"), true)
    local has_agg
    view.features, has_agg = view_features(view, hs, false)
    if has_agg then
        view.mode = view.interval and "time_interval" or "continuous"
    else
        if view.interval then
            fail(pos, "%s: `aggregation_interval` applies to Aggregate features only", label)
        end
        view.mode = "attribute"
    end
    register(view)
    view.json = obj("kind", "stream", "name", view.name, "source", src.name, "sources", nil,
                    "entities", names_json(view.entities), "join_keys", fields_json(view.keys),
                    "online", view.online, "offline", view.offline,
                    "feature_start_time", view.feature_start_time,
                    "batch_schedule", view.batch_schedule, "ttl", view.ttl,
                    "timestamp_field", view.timestamp_field,
                    "aggregation_interval", view.interval, "mode", view.mode,
                    "transformation", function_json(view.transformation),
                    "features", features_json(view.features),
                    "description", view.description, "tags", map(view.tags),
                    "owner", view.owner, "file", pos.file, "line", pos.line)
    local fnames = {}
    for i, f in next, view.features do
        fnames[i] = f.name
    end
    return handle(view, {name = view.name, features = fnames, select = select_features})
end

local REALTIME_VIEW_ARGS = {"name", "sources", "features", "transformation", "description",
                            "tags", "owner"}

local function RealtimeFeatureView(...)
    local pos = callsite()
    check_open(pos, "RealtimeFeatureView")
    local a = one_table(pos, "RealtimeFeatureView", ...)
    local label = check_args(pos, "RealtimeFeatureView", a, REALTIME_VIEW_ARGS,
                             {"name", "sources", "features", "transformation"})
    local view = {kind = "realtime_view", ns = "view", pos = pos, label = label}
    view.name = req_name(pos, label, a)
    check_unique(view)
    local srcs = records(pos, label, "sources", rawget(a, "sources"),
                         {request_source = true, stream_view = true, realtime_view = true},
                         "a RequestSource or a StreamFeatureView", true)
    local nreq = 0
    view.entities = {}
    local seen_ent = {}
    for _, s in next, srcs do
        if s.kind == "request_source" then
            nreq = nreq + 1
            if nreq > 1 then
                fail(pos, "%s: `sources` may hold one RequestSource only", label)
            end
        elseif s.kind == "realtime_view" then
            fail(pos, "%s: a realtime view cannot read another realtime view (%s)", label, s.label)
        else
            for _, e in next, s.entities do
                if not seen_ent[e] then
                    seen_ent[e] = true
                    view.entities[#view.entities + 1] = e
                end
            end
        end
    end
    view.sources = srcs
    view.keys, view.jk = {}, {}
    add_join_keys(pos, label, view.entities, view.keys, view.jk)
    view.transformation = opt_function(pos, label, a, "transformation", true)
    view.description = opt_string(pos, label, a, "description")
    view.tags = opt_tags(pos, label, a)
    view.owner = opt_string(pos, label, a, "owner")
    local hs = list(pos, label, "features", rawget(a, "features"), true)
    view.features = view_features(view, hs, true)
    register(view)
    view.json = obj("kind", "realtime", "name", view.name, "source", nil,
                    "sources", names_json(srcs), "entities", names_json(view.entities),
                    "join_keys", fields_json(view.keys), "online", true, "offline", true,
                    "feature_start_time", nil, "batch_schedule", nil, "ttl", nil,
                    "timestamp_field", nil, "aggregation_interval", nil, "mode", "attribute",
                    "transformation", function_json(view.transformation),
                    "features", features_json(view.features),
                    "description", view.description, "tags", map(view.tags),
                    "owner", view.owner, "file", pos.file, "line", pos.line)
    local fnames = {}
    for i, f in next, view.features do
        fnames[i] = f.name
    end
    return handle(view, {name = view.name, features = fnames, select = select_features})
end

-- ---------------------------------------------------------------------------------------
-- Feature services (resolved in finalize: items may name views of later files)

local SERVICE_ARGS = {"name", "features", "description", "tags", "owner"}

local function FeatureService(...)
    local pos = callsite()
    check_open(pos, "FeatureService")
    local a = one_table(pos, "FeatureService", ...)
    local label = check_args(pos, "FeatureService", a, SERVICE_ARGS, {"name", "features"})
    local rec = {kind = "service", ns = "service", pos = pos, label = label}
    rec.name = req_name(pos, label, a)
    rec.items = {}
    for i, it in next, list(pos, label, "features", rawget(a, "features"), true) do
        local r = info[it]
        if type(it) == "string" then
            rec.items[i] = {name = it}
        elseif r and (r.kind == "stream_view" or r.kind == "realtime_view") then
            rec.items[i] = {view = r}
        elseif r and r.kind == "selection" then
            rec.items[i] = {view = r.view, names = r.names}
        else
            fail(pos, "%s: `features`[%d] must be a feature view, view:select{...} or a view " ..
                 "name, got %s", label, i, describe(it))
        end
    end
    rec.description = opt_string(pos, label, a, "description")
    rec.tags = opt_tags(pos, label, a)
    rec.owner = opt_string(pos, label, a, "owner")
    register(rec)
    return handle(rec, {name = rec.name})
end

local function resolve_service(rec)
    local label = rec.label
    local items, seen, jk = {}, {}, {}
    local view_names = {}
    for _, v in next, objects.view do
        view_names[#view_names + 1] = v.name
    end
    for i, it in next, rec.items do
        local view = it.view
        if view == nil then
            view = by_name.view[it.name]
            if view == nil then
                fail(rec.pos, "%s: unknown feature view `%s`%s", label, it.name,
                     suggest(it.name, view_names))
            end
        end
        if seen[view] then
            fail(rec.pos, "%s: feature view `%s` is listed twice", label, view.name)
        end
        seen[view] = true
        for _, k in next, view.keys do
            local prev = jk[k.name]
            local ent = view.jk[k.name].entity
            if prev == nil then
                jk[k.name] = {type = k.type, entity = ent, view = view.name}
            elseif not type_equal(prev.type, k.type) then
                fail(rec.pos, "%s: join key `%s` is %s in entity `%s` (view `%s`) but %s in " ..
                     "entity `%s` (view `%s`)", label, k.name, type_name(prev.type), prev.entity,
                     prev.view, type_name(k.type), ent, view.name)
            end
        end
        local names = it.names
        if names == nil then
            names = {}
            for j, f in next, view.features do
                names[j] = f.name
            end
        end
        items[i] = obj("view", view.name, "features", arr(names))
    end
    rec.json = obj("name", rec.name, "features", arr(items), "description", rec.description,
                   "tags", map(rec.tags), "owner", rec.owner,
                   "file", rec.pos.file, "line", rec.pos.line)
end

-- ---------------------------------------------------------------------------------------
-- The module defs.c drives.

local M = {json_array = ARR, json_object = OBJ, json_map = MAP}

-- Reading a global that neither the repository nor the sandbox defines is an error naming
-- it and the closest defined name (globals, and the locals of the function reading it),
-- rather than a nil that fails later and elsewhere.
local getlocal = debug.getlocal
local function undefined(t, k)
    local v = G[k]
    if v ~= nil or type(k) ~= "string" then
        return v
    end
    local names = {}
    for _, src in next, {t, G} do
        for n in next, src do
            if is_ident(n) then
                names[#names + 1] = n
            end
        end
    end
    for i = 1, 250 do
        local n = getlocal(2, i)
        if n == nil then
            break
        end
        if is_ident(n) then
            names[#names + 1] = n
        end
    end
    fail(callsite(), "`%s` is not defined%s", k, suggest(k, names))
end

-- The environment of the repository's files: the DSL on top of the sandbox's globals.
local env = setmetatable({}, {__index = undefined, __metatable = false})
env._G = env
env.String = new_type({name = "string"})
env.Int64 = new_type({name = "int64"})
env.Int32 = new_type({name = "int32"})
env.Float64 = new_type({name = "float64"})
env.Float32 = new_type({name = "float32"})
env.Bool = new_type({name = "boolean"})
env.Timestamp = new_type({name = "timestamp"})
env.Array = Array
env.Map = Map
env.Struct = Struct
env.Field = Field
env.Entity = Entity
env.FileConfig = FileConfig
env.PushConfig = PushConfig
env.StreamSource = StreamSource
env.RequestSource = RequestSource
env.LifetimeWindow = LifetimeWindow
env.Attribute = Attribute
env.Aggregate = Aggregate
env.StreamFeatureView = StreamFeatureView
env.RealtimeFeatureView = RealtimeFeatureView
env.FeatureService = FeatureService
M.env = env

-- Records the text of a file about to run (function sources are sliced from it).
function M.begin_file(name, text)
    texts[name] = text
end

local function sorted_json(recs)
    local copy = {}
    for i, r in next, recs do
        copy[i] = r
    end
    tsort(copy, function(x, y)
        return x.name < y.name
    end)
    local out = {}
    for i, r in next, copy do
        out[i] = r.json
    end
    return arr(out)
end

-- Whole-repository checks; returns the canonical description and fills M.functions.
function M.finalize()
    for _, s in next, objects.service do
        resolve_service(s)
    end
    sealed = true
    local fns = {transformation = {}, post_processor = {}}
    for _, v in next, objects.view do
        if v.transformation then
            fns.transformation[v.name] = v.transformation.fn
        end
    end
    for _, s in next, objects.source do
        if s.post_processor then
            fns.post_processor[s.name] = s.post_processor.fn
        end
    end
    M.functions = fns
    return obj("entities", sorted_json(objects.entity), "sources", sorted_json(objects.source),
               "feature_views", sorted_json(objects.view),
               "feature_services", sorted_json(objects.service))
end

return M
