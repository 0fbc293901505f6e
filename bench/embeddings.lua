-- One POST /v1/embeddings per request, the same body every time (closed loop:
-- each connection sends its next request when the previous answer is in).
-- bench/wrk.py fills in the two placeholders below before handing this to wrk.

wrk.method = "POST"
wrk.body = [==[{{BODY}}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = [==[{{AUTHORIZATION}}]==]

-- One JSON line for the runner to parse; latencies in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
