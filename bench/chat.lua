-- wrk script: POST chat-completions bodies like the engines' generate step sends, one topic
-- per request. Run with `wrk -s bench/chat.lua -c C -t 1 -d 10s URL/chat/completions`.
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter + 1
  local body = '{"model":"mock","messages":[{"role":"user","content":"Write one question about topic '
    .. counter .. '."}],"max_tokens":128,"seed":' .. counter .. '}'
  return wrk.format("POST", nil, headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("wrk-json {\"requests\":%d,\"duration_us\":%d,\"errors\":%d,\"non200\":%d,\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
