-- wrk script for POST /search: the image file IMAGE as a multipart upload when IMAGE is set, else the hex code
-- CODE as JSON; k = 10. Prints the latency summary as one JSON line when the run ends.
local image = os.getenv("IMAGE")
wrk.method = "POST"
if image then
  local file = assert(io.open(image, "rb"))
  local data = file:read("*all")
  file:close()
  local boundary = "nachashbenchboundary"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  wrk.body = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"query.jpg\"\r\n" ..
    "Content-Type: image/jpeg\r\n\r\n" .. data .. "\r\n--" .. boundary .. "\r\nContent-Disposition: form-data; " ..
    "name=\"k\"\r\n\r\n10\r\n--" .. boundary .. "--\r\n"
else
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"code": "' .. os.getenv("CODE") .. '", "k": 10}'
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "socket_errors": %d, "non_2xx": %d, "seconds": %.3f, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
