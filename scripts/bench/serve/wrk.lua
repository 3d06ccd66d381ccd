-- wrk script for scripts.bench.serve (load.py): POST real pictures of digits (PNG, JPEG) to TorchServe, stop
-- after a fixed number of answers, print one JSON line of results.
--
--   wrk -t1 -c32 -d300s -s scripts/bench/serve/wrk.lua http://127.0.0.1:8080/predictions/mnist \
--       -- <answers per thread> <inference key> a.png b.png ...
--
-- Each thread cycles the bodies (starting at a different one), counts answers per HTTP status
-- and stops itself after its share. wrk's main thread otherwise sleeps out the whole -d, so
-- the first thread to finish interrupts it (SIGINT, wrk's own "stop now"); any other thread
-- then stops within wrk's 100 ms tick. The JSON line starts with "BENCH_JSON ".

local ffi = require("ffi")
ffi.cdef([[
int getpid(void);
int kill(int pid, int sig);
]])
local SIGINT = 2

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  limit = tonumber(args[1])
  requests_ = {}
  for i = 3, #args do
    local file = assert(io.open(args[i], "rb"))
    local kind = args[i]:lower():match("%.jpe?g$") and "image/jpeg" or "image/png"
    local headers = { ["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = kind }
    requests_[#requests_ + 1] = wrk.format("POST", nil, headers, file:read("*a"))
    file:close()
  end
  position = thread_index % #requests_
  answered = 0
  statuses = {}
end

function request()
  position = position % #requests_ + 1
  return requests_[position]
end

function response(status, headers, body)
  if answered >= limit then
    return -- in flight when this thread stopped: not part of the fixed count
  end
  answered = answered + 1
  local code = tostring(status)
  statuses[code] = (statuses[code] or 0) + 1
  if answered == limit then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), SIGINT)
  end
end

function done(summary, latency, requests)
  local answers, ok, codes = 0, 0, {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do
      codes[code] = (codes[code] or 0) + count
      answers = answers + count
      if code == "200" then
        ok = ok + count
      end
    end
  end
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  local seconds = summary.duration / 1e6
  local status_json = {}
  for code, count in pairs(codes) do
    status_json[#status_json + 1] = string.format('"%s": %d', code, count)
  end
  io.write(
    "BENCH_JSON ",
    string.format(
      '{"requests": %d, "duration_s": %.4f, "rps": %.2f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
        .. '"mean_ms": %.3f, "max_ms": %.3f, "non_200": %d, "socket_errors": %d, "statuses": {%s}}\n',
      answers,
      seconds,
      answers / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(90) / 1000,
      latency:percentile(99) / 1000,
      latency.mean / 1000,
      latency.max / 1000,
      answers - ok + socket_errors,
      socket_errors,
      table.concat(status_json, ", ")
    )
  )
end
