-- wrk posts the run's pre-encoded request bodies in turn (bench/wrk.py writes them: one file and an index).
-- Arguments after "--": path, content type, bodies file, index file (lines "<offset> <length> <header length or ->").
local prepared, count, next_one = {}, 0, 0

function init(args)
  local path, content_type, bodies, index = args[1], args[2], args[3], args[4]
  local f = assert(io.open(bodies, "rb"))
  local blob = f:read("*a")
  f:close()
  for line in io.lines(index) do
    local offset, length, header_length = line:match("^(%d+) (%d+) (%S+)$")
    local headers = {["Content-Type"] = content_type}
    if header_length ~= "-" then
      headers["Inference-Header-Content-Length"] = header_length
    end
    count = count + 1
    prepared[count] = wrk.format("POST", path, headers, blob:sub(tonumber(offset) + 1, tonumber(offset) + tonumber(length)))
  end
end

function request()
  next_one = next_one % count + 1
  return prepared[next_one]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, ' ..
    '"max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
