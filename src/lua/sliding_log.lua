
-- ============================================================== sliding_log

-- A sorted set of request times, exact. Every entry has its own score,
-- strictly increasing, so the member can simply be the score.
--
-- sliding_log(key, limit, window_ms, cost): one zone (see batch.lua), made
-- only when the batch has a zone of it. Allowed, it returns then the first
-- new entry's time, the TTL in ms as text, `gone` as text, and whether the
-- key must be replaced.
local sliding_log
if with_sliding_log then
  sliding_log = function(key, limit, window_ms, cost)
    local window = window_ms * 1000
    -- ZCOUNT comes first: a key of another type (the zone's algorithm changed
    -- in a reload) answers WRONGTYPE there, reads as empty, and is replaced
    -- when a request is recorded.
    local gone = now - window  -- entries scored at or before it have left the window
    local count = redis.pcall('ZCOUNT', key, format('(%d', gone), '+inf')
    local stale, start = false, now
    if type(count) == 'table' then
      if not match(count.err or '', '^WRONGTYPE') then
        error(count)
      end
      stale, count = true, 0
    elseif count > 0 then
      -- the newest entry is in the window: the new ones come after it
      start = max(now, call('ZRANGE', key, '-1', '-1', 'WITHSCORES')[2] + 1)
    end

    if cost > limit then
      return false, limit, max(0, limit - count), window_ms
    end
    local remaining = limit - count - cost
    -- Once this request is recorded, the window holds the set's last `count`
    -- entries, then the new ones: reset_ms is when the n-th oldest has left,
    -- for a request that fits once the (count + cost - limit) oldest have left.
    local n = 0
    if remaining < 0 then
      n = count + cost - limit
    elseif remaining == 0 then
      n = 1
    end
    local reset_ms = 0
    if n > 0 then
      local time = start + (n - count - 1)
      if n <= count then
        local rank = format('%d', n - count - 1)
        time = call('ZRANGE', key, rank, rank, 'WITHSCORES')[2] + 0
      end
      reset_ms = ceil((time + window - now) / 1000)
    end
    if remaining < 0 then
      return false, limit, max(0, limit - count), reset_ms
    end
    -- The set matters until its newest entry leaves the window.
    return true, limit, remaining, reset_ms, start,
           format('%d', ceil((start + cost - 1 + window - now) / 1000)), format('%d', gone), stale
  end
end
