-- wrk script for tests/hostile/key_flood.sh: every request carries an X-Key
-- of its own, "<prefix><thread>-<i>", i from FLOOD_FIRST on; each thread
-- stops after FLOOD_COUNT responses and writes FLOOD_DONE_DIR/<thread> (wrk
-- itself runs for its -d duration: the script interrupts it when every
-- thread is done). Environment: FLOOD_PATH, FLOOD_PREFIX, FLOOD_FIRST,
-- FLOOD_COUNT (per thread), FLOOD_DONE_DIR.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  path = os.getenv("FLOOD_PATH") or "/"
  prefix = os.getenv("FLOOD_PREFIX") or "k"
  next_key = tonumber(os.getenv("FLOOD_FIRST") or "1")
  count = tonumber(os.getenv("FLOOD_COUNT") or "1000")
  done_dir = os.getenv("FLOOD_DONE_DIR")
  answered, ok, rejected, other = 0, 0, 0, 0
end

function request()
  local key = prefix .. id .. "-" .. next_key
  next_key = next_key + 1
  return wrk.format("GET", path, { ["X-Key"] = key })
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
  elseif status == 429 then
    rejected = rejected + 1
  else
    other = other + 1
  end
  if answered == count then
    if done_dir then
      local marker = io.open(done_dir .. "/" .. id, "w")
      marker:close()
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t_ok, t_rejected, t_other = 0, 0, 0
  for _, thread in ipairs(threads) do
    t_ok = t_ok + thread:get("ok")
    t_rejected = t_rejected + thread:get("rejected")
    t_other = t_other + thread:get("other")
  end
  -- socket errors only: wrk also counts every 429 as a "status" error
  io.write(string.format("FLOOD requests=%d ok=%d rejected=%d other=%d socket_errors=%d seconds=%.1f\n",
                         summary.requests, t_ok, t_rejected, t_other,
                         summary.errors.connect + summary.errors.read + summary.errors.write +
                         summary.errors.timeout,
                         summary.duration / 1e6))
end
