-- wrk script for bench/webhooks.sh: every request POSTs the JSON body in the
-- file $WRK_BODY_FILE; done() prints the figures as one line,
-- `WRKJSON {...}`, for the script to read.
local file = assert(io.open(assert(os.getenv("WRK_BODY_FILE"), "set WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a")
file:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,'
    .. '"errors_status":%d,"errors_other":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
