-- One request shape for wrk, from the environment (set by benchmarks/load.py):
--   WRK_METHOD, WRK_BODY_FILE (raw body bytes), WRK_CONTENT_TYPE, WRK_TOKEN (bearer token),
--   WRK_IDEMPOTENT=1 (a fresh Idempotency-Key per request, so none is a replay), WRK_KEY_PREFIX
--   (unique per run, so no key repeats one of an earlier run).
-- done() prints one line "WRKJSON {...}" with requests, seconds, status errors and latency
-- percentiles in milliseconds, which load.py parses.
local method = os.getenv("WRK_METHOD") or "GET"
local token = os.getenv("WRK_TOKEN")
local content_type = os.getenv("WRK_CONTENT_TYPE")
local idempotent = os.getenv("WRK_IDEMPOTENT") == "1"
local key_prefix = os.getenv("WRK_KEY_PREFIX") or tostring(os.time())
local body = nil
local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  body = f:read("*a")
  f:close()
end

local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  local headers = {}
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  if content_type and content_type ~= "" then headers["Content-Type"] = content_type end
  if idempotent then
    counter = counter + 1
    headers["Idempotency-Key"] = string.format("%s-%d-%d", key_prefix, tid or 0, counter)
  end
  return wrk.format(method, nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.3f, "non_2xx_3xx": %d, "socket_errors": %d, '
      .. '"p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
