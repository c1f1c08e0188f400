-- wrk script: PATCH /api/v1/audits/{id}/answers, one audit per connection.
--
-- Run it with as many threads as connections (wrk -t64 -c64 ...): a wrk
-- thread then owns exactly one connection, so the per-thread globals below
-- are per-connection state. Each connection sends If-Match with the version
-- from the previous response's ETag (a 412 also carries the current ETag,
-- so a stale connection recovers on its next request).
--
-- Environment:
--   DOSTUP_LOAD_TOKEN   bearer access token
--   DOSTUP_LOAD_STATE   file with one "<audit-id> <version>" line per connection
--   DOSTUP_LOAD_RESULT  optional: file to append a result row to (see report.lua)
--   DOSTUP_LOAD_LABEL   optional: label of that row (e.g. the database)
--   DOSTUP_LOAD_PREFER  optional: a Prefer header to send (e.g. return=minimal)
--   DOSTUP_LOAD_WORKLOAD optional: workload name in the result row (default patch)
--   DOSTUP_LOAD_KEY_PREFIX optional: send an Idempotency-Key on every request,
--                       unique per request: "<prefix>-<audit-id>-<n>", as a
--                       phone does; use a new prefix for every run
--   DOSTUP_LOAD_ACCEPT_ENCODING optional: an Accept-Encoding header to send
--                       (e.g. gzip, as Android's HTTP client adds by itself)

local script_dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(script_dir .. "report.lua")

-- Main state: setup() and done() -------------------------------------------

local audits = nil
local threads = {}

local function load_audits()
  local file = os.getenv("DOSTUP_LOAD_STATE") or error("DOSTUP_LOAD_STATE is not set")
  local list = {}
  for line in io.lines(file) do
    local id, version = line:match("^(%S+)%s+(%d+)%s*$")
    if id then
      list[#list + 1] = { id = id, version = tonumber(version) }
    end
  end
  return list
end

function setup(thread)
  audits = audits or load_audits()
  local n = #threads + 1
  local audit = audits[n]
  if audit == nil then
    error(string.format("thread %d has no audit: the state file lists %d; use -t equal to -c", n, #audits))
  end
  thread:set("audit_id", audit.id)
  thread:set("version", audit.version)
  threads[n] = thread
end

function done(summary, latency, requests)
  local ok = report.sum(threads, "ok")
  local stale = report.sum(threads, "stale")
  local other = report.sum(threads, "other")
  report.finish(os.getenv("DOSTUP_LOAD_WORKLOAD") or "patch", summary, latency, stale + other,
    string.format("2xx %d, 412 %d, other %d", ok, stale, other))
end

-- Thread state: init(), request(), response() ------------------------------

local token = os.getenv("DOSTUP_LOAD_TOKEN") or error("DOSTUP_LOAD_TOKEN is not set")
local path, headers
local sent = 0
local key_prefix = os.getenv("DOSTUP_LOAD_KEY_PREFIX")
ok, stale, other = 0, 0, 0

function init(args)
  path = "/api/v1/audits/" .. audit_id .. "/answers"
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  local prefer = os.getenv("DOSTUP_LOAD_PREFER")
  if prefer and prefer ~= "" then
    headers["Prefer"] = prefer
  end
  local accept_encoding = os.getenv("DOSTUP_LOAD_ACCEPT_ENCODING")
  if accept_encoding and accept_encoding ~= "" then
    headers["Accept-Encoding"] = accept_encoding
  end
  if key_prefix == "" then
    key_prefix = nil
  end
end

function request()
  sent = sent + 1
  -- A realistic small batch: two answers whose values change every time.
  local body = string.format(
    '{"answers":{"territory.parking_total":%d,"territory.path_width":%.1f}}',
    sent % 50, 1.5 + (sent % 20) / 10)
  headers["If-Match"] = '"' .. version .. '"'
  if key_prefix then
    headers["Idempotency-Key"] = key_prefix .. "-" .. audit_id .. "-" .. sent
  end
  return wrk.format("PATCH", path, headers, body)
end

function response(status, response_headers, body)
  local etag = response_headers["etag"] or response_headers["ETag"] or response_headers["Etag"]
  if etag then
    local v = etag:match("(%d+)")
    if v then
      version = tonumber(v)
    end
  end
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 412 then
    stale = stale + 1
  else
    other = other + 1
  end
end
