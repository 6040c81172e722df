-- Each request is a new node asking with 1-20 GiB free (a large fleet, each node once).
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + 17)
  n = 0
  errors = 0
  items = 0
end

function request()
  n = n + 1
  local body = string.format('{"free_space_gb": %d, "node_id": "bench-%d-%d"}',
                             math.random(1, 20), tid, n)
  return wrk.format("POST", "/allocate", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  else
    local _, count = string.gsub(body, '"allocation_id"', "")
    items = items + count
  end
end

function done(summary, latency, requests)
  local errs, its = 0, 0
  for _, thread in ipairs(threads) do
    errs = errs + thread:get("errors")
    its = its + thread:get("items")
  end
  io.write(string.format("BENCH requests=%d errors=%d items=%d rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, errs, its, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
