-- wrk script for bench/run.py: one request shape for every benchmarked endpoint.
--
--   wrk -t2 -c16 -d10s -s bench/wrk.lua URL -- METHOD PATH KIND ITEMS START ONCE QUOTA MARKER T
--
-- KIND   "bearer": ITEMS holds access tokens, sent as `Authorization: Bearer <token>`;
--        "json": ITEMS holds JSON bodies, POSTed as application/json.
-- ITEMS  a file, one item a line. Thread k of T takes items START+k, START+k+T, ...
-- ONCE   "1": each item is used once (codes, refresh tokens); running out stops the thread
--        and is reported ("exhausted"), never silently wrapped. "0": items are cycled.
-- QUOTA  responses per thread after which the thread stops and touches MARKER.k (0: none),
--        so run.py can end the run after an exact number of requests.
-- T      the number of threads (wrk's -t).
--
-- Every request carries a random X-Forwarded-For (the server runs with PROXY_FIX_HOPS=1), so
-- per-IP rate limits count as they would for many clients. Every response's status is
-- checked: a non-2xx answer is an error, and done() prints one JSON line (BENCH {...}).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  method, path, kind, items_path, start, once, quota, marker, nthreads =
    args[1], args[2], args[3], args[4], tonumber(args[5]), args[6] == "1",
    tonumber(args[7]), args[8], tonumber(args[9])
  items = {}
  local index = 0
  for line in io.lines(items_path) do
    if index >= start and (index - start) % nthreads == id then
      table.insert(items, line)
    end
    index = index + 1
  end
  used = 0          -- items this thread has taken
  responses = 0
  non2xx = 0
  exhausted = 0
  first_error = ""
  math.randomseed(os.time() * 16 + id)
end

local function forwarded_for()
  return string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255),
                       math.random(1, 254))
end

function request()
  local item
  if used >= #items then
    if once then
      exhausted = 1
      wrk.thread:stop()
    end
    item = items[(used % #items) + 1]
  else
    item = items[used + 1]
  end
  used = used + 1
  local headers = {["X-Forwarded-For"] = forwarded_for()}
  local body = nil
  if kind == "bearer" then
    headers["Authorization"] = "Bearer " .. item
  else
    headers["Content-Type"] = "application/json"
    body = item
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_error == "" then
      first_error = tostring(status) .. " " .. string.sub(body or "", 1, 200)
    end
  end
  if quota > 0 and responses >= quota then
    local file = io.open(marker .. "." .. id, "w")
    if file then file:close() end
    wrk.thread:stop()
  end
end

local function json_string(text)
  return '"' .. string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local bad, used_max, ran_out, first = 0, 0, 0, ""
  local first_item = threads[1]:get("start")
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    used_max = math.max(used_max, thread:get("used") or 0)
    ran_out = ran_out + (thread:get("exhausted") or 0)
    if first == "" then first = thread:get("first_error") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"non2xx": %d, "socket_errors": %d, "timeouts": %d, "next_start": %d, ' ..
    '"exhausted": %d, "first_error": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write, e.timeout, first_item + (used_max + 1) * #threads,
    ran_out, json_string(first)))
end
