-- wrk script: GET /api/v1/checklists/{id}/versions/{version} with
-- If-None-Match, which the service answers 304 without a body. Counts every
-- answer that is not a 304.
--
-- Environment:
--   DOSTUP_LOAD_TOKEN   bearer access token
--   DOSTUP_LOAD_PATH    the checklist version's path
--   DOSTUP_LOAD_ETAG    its ETag, as the list gave it (with quotes)
--   DOSTUP_LOAD_RESULT  optional: file to append a result row to (see report.lua)
--   DOSTUP_LOAD_LABEL   optional: label of that row

local script_dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(script_dir .. "report.lua")

-- A static request: wrk formats it once per thread.
wrk.method = "GET"
wrk.path = os.getenv("DOSTUP_LOAD_PATH") or error("DOSTUP_LOAD_PATH is not set")
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("DOSTUP_LOAD_TOKEN") or error("DOSTUP_LOAD_TOKEN is not set"))
wrk.headers["If-None-Match"] = os.getenv("DOSTUP_LOAD_ETAG") or error("DOSTUP_LOAD_ETAG is not set")

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

not_modified, other = 0, 0

function response(status, headers, body)
  if status == 304 then
    not_modified = not_modified + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local hits = report.sum(threads, "not_modified")
  local misses = report.sum(threads, "other")
  report.finish("checklist-304", summary, latency, misses,
    string.format("304 %d, other %d", hits, misses))
end
