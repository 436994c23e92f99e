-- wrk script: POSTs the bodies of a file (one per line) round-robin, each thread from its own
-- offset, and prints the run as one JSON line prefixed with "JSON ".
-- Usage: wrk -t2 -c32 -d5s -H 'Authorization: ...' -s post.lua URL -- BODIES_FILE

local threads = {}
local requests = {}
local n = 0
local i = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1] or error("post.lua: the bodies file is the first script argument")
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(wrk.headers) do headers[k] = v end   -- -H flags, e.g. Authorization
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("POST", nil, headers, line)
    end
  end
  f:close()
  assert(n > 0, "post.lua: " .. path .. " holds no body")
  i = (id or 0) * 7919 % n
end

function request()
  i = i % n + 1
  return requests[i]
end

function done(summary, latency, requests_)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local function ms(us) return us / 1000 end
  io.write(string.format(
    'JSON {"tool":"wrk","duration_s":%.3f,"completed":%d,"rps":%.1f,"ok_rps":%.1f,' ..
    '"non2xx":%d,"bytes_in":%d,"latency_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,' ..
    '"p99":%.3f,"p999":%.3f,"max":%.3f},"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"status":%d}}\n',
    secs, summary.requests, summary.requests / secs,
    (summary.requests - e.status) / secs, e.status, summary.bytes,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(90)),
    ms(latency:percentile(99)), ms(latency:percentile(99.9)), ms(latency.max),
    e.connect, e.read, e.write, e.timeout, e.status))
end
