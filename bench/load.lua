-- wrk script for bench/load.py: logged-in viewers cycling through the pages,
-- each waiting a second between requests. bench/load.py writes the sessions
-- and paths into the environment (PW_COOKIES, PW_PATHS: space-separated).

local cookies = {}
local paths = {}
for cookie in string.gmatch(os.getenv("PW_COOKIES") or "", "%S+") do table.insert(cookies, cookie) end
for path in string.gmatch(os.getenv("PW_PATHS") or "", "%S+") do table.insert(paths, path) end
local think_ms = tonumber(os.getenv("PW_THINK_MS") or "1000")

local counter = 0
local statuses = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  requests_made = 0
end

function request()
  requests_made = requests_made + 1
  local index = requests_made + id * 7
  local path = paths[(index % #paths) + 1]
  local headers = {}
  headers["Cookie"] = "sessionid=" .. cookies[(index % #cookies) + 1]
  -- the overview's poll is an HTMX request: a path ending in #poll asks for the partial
  if string.sub(path, -5) == "#poll" then
    path = string.sub(path, 1, -6)
    headers["HX-Request"] = "true"
  end
  return wrk.format("GET", path, headers)
end

function delay()
  return think_ms
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "wrk requests=%d seconds=%.2f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f errors=%d status_errors=%d timeouts=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors, summary.errors.status, summary.errors.timeout))
end
