
-- ============================================================== sliding_log

-- A sorted set of request times, exact. Every entry has its own score,
-- strictly increasing, so the member can simply be the score.
--
-- A charge (force) adds its entries whatever the window holds, at most
-- `limit` of them (batch.lua caps its cost: a window's worth is all that any
-- request can wait for); past the limit, a request waits until the oldest
-- entries have left for it to fit again.
--
-- sliding_log(key, limit, window_ms, cost, n, units, lifetime, force): one
-- zone, n requests of it, and for a lease entry the units wanted and the
-- lifetime allowed in µs, for a charge force (see batch.lua), made only when
-- the batch has a zone of it. Some passing, it returns then the first new
-- entry's time, the TTL in ms as text, `gone` as text, and whether the key
-- must be replaced; for a lease, then the units granted, the lifetime in ms,
-- and the mark.
--
-- A lease's units are entries of their own, after the n's, scored from the
-- end of its lifetime on (or later, scores staying strictly increasing): a
-- unit spent at any moment of the lifetime is then counted, from the grant
-- on, at least as long as an entry of its own time would be. The mark is the
-- last one's score: a hand-back removes the grant's last entries, those still
-- in the window.
--
-- sliding_log_hand_back(key, window_ms, units, mark), made only when the
-- batch has a hand-back.
local sliding_log, sliding_log_hand_back
if with_sliding_log then
  -- reset_ms when the k-th oldest entry of the window leaves it, the window
  -- holding the set's last `count` entries, then new ones from `start` on.
  local function leaves(key, k, count, start, window)
    local time = start + (k - count - 1)
    if k <= count then
      local rank = format('%d', k - count - 1)
      time = call('ZRANGE', key, rank, rank, 'WITHSCORES')[2] + 0
    end
    return ceil((time + window - now) / 1000)
  end

  sliding_log = function(key, limit, window_ms, cost, n, units, lifetime, force)
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

    if cost > limit and not force then
      return 0, limit, max(0, limit - count), 0, window_ms
    end
    -- The n requests in turn: the first `admitted` fit, each seeing the ones
    -- before it (a charge: all, whether or not they fit), whose entries
    -- follow one another from `start` on.
    local admitted = force and n or max(0, min(n, floor((limit - count) / cost)))
    local total = admitted * cost
    local remaining = limit - count - total  -- (below 0 after a charge over the limit)
    -- Once the admitted are recorded, the window holds the set's last `count`
    -- entries, then the `total` new ones. The last admitted: when nothing
    -- remains, the next request of cost 1 fits once the oldest has left (a
    -- charge, whose reply has no wait, skips the ZRANGE). The rejected: once
    -- the (count + total + cost - limit) oldest have left (also past the
    -- limit, after a charge: count > limit).
    local retry_ms = 0
    if admitted < n then
      retry_ms = leaves(key, count + total + cost - limit, count, start, window)
    end
    if admitted == 0 then
      return 0, limit, max(0, remaining), 0, retry_ms
    end
    local reset_ms = 0
    if remaining == 0 and not force then
      reset_ms = leaves(key, 1, count, start, window)
    end
    if units and admitted == n then
      local lifetime_ms = floor(lifetime / 1000)
      local granted = min(units, floor(remaining / LEASE_SHARE))
      granted = granted - granted % cost  -- whole requests' worth: less could never be spent
      local last = start + total - 1
      if lifetime_ms < 1 or granted < 1 then
        granted, lifetime_ms = 0, 0
      else
        last = max(now + lifetime_ms * 1000, last + 1) + granted - 1
      end
      return admitted, limit, remaining, reset_ms, retry_ms, start,
             format('%d', ceil((last + window - now) / 1000)), format('%d', gone), stale,
             granted, lifetime_ms, granted > 0 and last or 0
    end
    -- The set matters until its newest entry leaves the window.
    return admitted, limit, remaining, reset_ms, retry_ms, start,
           format('%d', ceil((start + total - 1 + window - now) / 1000)), format('%d', gone), stale
  end

  if with_hand_back then
    -- The units taken back: the grant's last `units` entries, those still in
    -- the window (a key of another type has none).
    sliding_log_hand_back = function(key, window_ms, units, mark)
      local from = max(mark - units + 1, now - window_ms * 1000 + 1)
      if from > mark then
        return 0
      end
      local taken = redis.pcall('ZREMRANGEBYSCORE', key, format('%d', from), format('%d', mark))
      if type(taken) == 'table' then
        if not match(taken.err or '', '^WRONGTYPE') then
          error(taken)
        end
        return 0
      end
      return taken
    end
  end
end
