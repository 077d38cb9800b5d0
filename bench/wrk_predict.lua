-- wrk script of bench/serve_throughput.py: single-text POST /predict requests, cycling
-- through a few SST-2-like sentences; prints one JSON line of figures when done.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local texts = {
  "a gorgeous , witty , seductive movie .",
  "the worst film of the year : dull , lifeless and painfully unfunny .",
  "it 's a charming and often affecting journey .",
  "unflinchingly bleak and desperate",
  "the acting , costumes , music , cinematography and sound are all astounding",
}
local i = 0

request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, '{"text": "' .. texts[(i % #texts) + 1] .. '"}')
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.2f, "p99_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
