-- wrk script for tests/e2e/leases.sh: every request carries X-Client:
-- BLAST_KEY (environment) to BLAST_PATH (default the URL's path); with
-- BLAST_DELAY_MS, each connection waits that long after each answer before
-- its next request (a paced blast), else it sends at once; the
-- statuses are counted per thread and summed in done(), on one line:
--   BLAST requests=N ok=N rejected=N unavailable=N other=N socket_errors=N seconds=S
-- ok is 200, rejected 429, unavailable 503 (rate_guard_fail closed), other
-- anything else. wrk also counts 429 and 503 as "Non-2xx" responses: its
-- socket errors (connect, read, write, timeout) are only requests that got
-- no answer.
local threads = {}

local pause = tonumber(os.getenv("BLAST_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local key = os.getenv("BLAST_KEY") or "blast"
  local path = os.getenv("BLAST_PATH")
  ok, rejected, unavailable, other = 0, 0, 0, 0
  request_text = wrk.format("GET", path, { ["Host"] = wrk.host, ["X-Client"] = key })
end

function request()
  return request_text
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 429 then
    rejected = rejected + 1
  elseif status == 503 then
    unavailable = unavailable + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local t = { ok = 0, rejected = 0, unavailable = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for name in pairs(t) do
      t[name] = t[name] + thread:get(name)
    end
  end
  local e = summary.errors
  io.write(string.format("BLAST requests=%d ok=%d rejected=%d unavailable=%d other=%d socket_errors=%d seconds=%.1f\n",
                         summary.requests, t.ok, t.rejected, t.unavailable, t.other,
                         e.connect + e.read + e.write + e.timeout, summary.duration / 1e6))
end
