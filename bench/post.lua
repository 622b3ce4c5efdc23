-- wrk script: POST the body in $BENCH_BODY_FILE as JSON; stop each thread after
-- $BENCH_MAX_REQUESTS responses (wrk's -d bounds the time); print one JSON summary line.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "1000000")
local seen = 0

function response(status, headers, body)
   seen = seen + 1
   if seen >= max_requests then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
