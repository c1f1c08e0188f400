-- Shared reporting for the wrk scripts in this directory: prints one precise
-- line per run (from wrk's own latency record, in microseconds) and, when
-- DOSTUP_LOAD_RESULT names a file, appends a tab-separated row to it for
-- run.sh's table:
--   label  workload  requests  requests/s  p50_ms  p99_ms  max_ms  unexpected  socket_errors
-- (run.sh then adds the server's CPU time per request, in microseconds, and
-- PostgreSQL's, or "-" for the embedded database).

local M = {}

function M.finish(workload, summary, latency, unexpected, detail)
  local seconds = summary.duration / 1e6
  local rps = summary.requests / seconds
  local p50 = latency:percentile(50) / 1000
  local p90 = latency:percentile(90) / 1000
  local p99 = latency:percentile(99) / 1000
  local max = latency.max / 1000
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "%s: %d requests in %.1f s = %.0f req/s; latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; "
      .. "unexpected status %d (%s); socket errors %d (connect %d, read %d, write %d, timeout %d)\n",
    workload, summary.requests, seconds, rps, p50, p90, p99, max,
    unexpected, detail, socket_errors, e.connect, e.read, e.write, e.timeout))
  local path = os.getenv("DOSTUP_LOAD_RESULT")
  if path and path ~= "" then
    local label = os.getenv("DOSTUP_LOAD_LABEL") or "-"
    local f = assert(io.open(path, "a"))
    f:write(string.format("%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\n",
      label, workload, summary.requests, rps, p50, p99, max, unexpected, socket_errors))
    f:close()
  end
end

-- Sums a numeric per-thread global over the threads collected in setup().
function M.sum(threads, name)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (tonumber(t:get(name)) or 0)
  end
  return total
end

return M
