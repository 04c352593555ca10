-- wrk script of bench/load.py: POSTs one GraphQL body at a fixed rate, with an API key.
--
-- Environment: RUNQL_LOAD_BODY (a file holding the JSON body), RUNQL_LOAD_KEY (the API key's
-- secret), RUNQL_LOAD_RATE (requests per second, over all of wrk's threads), RUNQL_LOAD_THREADS.
-- Each thread sends on a schedule: a slot every THREADS / RATE seconds, whichever of its
-- connections is free (a late slot is skipped, not caught up). When every connection is busy
-- the server is not keeping up, which the achieved rate and the latencies then show.
-- done() prints one JSON line: requests, latency percentiles (microseconds), errors.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_usec; } runql_timeval;
  int gettimeofday(runql_timeval *tv, void *tz);
]]
local now_buffer = ffi.new("runql_timeval")

local function now_ms()
  ffi.C.gettimeofday(now_buffer, nil)
  return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_usec) / 1000
end

local file = assert(io.open(os.getenv("RUNQL_LOAD_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("RUNQL_LOAD_KEY")

local interval = 1000 * tonumber(os.getenv("RUNQL_LOAD_THREADS")) / tonumber(os.getenv("RUNQL_LOAD_RATE"))
local slot = nil

function delay()
  local now = now_ms()
  if slot == nil or slot < now then
    slot = now
  end
  slot = slot + interval
  return math.max(0, math.floor(slot - interval - now))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status))
end
