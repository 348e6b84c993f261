
-- ============================================================= fixed_window

-- One counter per aligned window, kept with the window's index as
-- "index:count".
--
-- A lease's units are added to the count of the window of the grant, and the
-- lease ends in that window (its last microsecond at the latest): every unit
-- is spent in the window that counts it. Its mark is the window's index; a
-- hand-back takes units off that window's count while it lasts.
--
-- A charge (force) adds its units to the count whatever it holds: past the
-- limit, every request waits for the window's end (a count stays a whole
-- number well below 2^53: 2^23 charges of the largest cost in one window).
--
-- fixed_window(state, limit, window_ms, cost, n, units, lifetime, force): one
-- zone, n requests of it, and for a lease entry the units wanted and the
-- lifetime allowed in µs, for a charge force (see batch.lua), made only when
-- the batch has a zone of it.
-- fixed_window_hand_back(state, window_ms, units, mark), made only when the
-- batch has a hand-back.
local fixed_window, fixed_window_hand_back
if with_fixed_window then
  fixed_window = function(state, limit, window_ms, cost, n, units, lifetime, force)
    local window = window_ms * 1000
    local index = floor(now / window)
    local count, same = 0, false
    if state then
      local i, c = match(state, '^(%d+):(%d+)$')
      if i and i + 0 == index then
        count, same = c + 0, true
      end
    end
    -- The count matters until its window ends.
    local to_end_ms = ceil(((index + 1) * window - now) / 1000)

    if cost > limit and not force then
      return 0, limit, max(0, limit - count), 0, window_ms
    end
    -- The n requests in turn: the first `admitted` fit, each seeing the ones
    -- before it (a charge: all, whether or not they fit).
    local admitted = force and n or min(n, floor((limit - count) / cost))
    if admitted <= 0 then
      return 0, limit, max(0, limit - count), 0, to_end_ms
    end
    count = count + admitted * cost
    local remaining = limit - count  -- (below 0 after a charge over the limit)
    if units and admitted == n then
      local lifetime_ms = floor(min(lifetime, (index + 1) * window - 1 - now) / 1000)
      -- the units wanted for the lifetime wanted, fewer for a shorter one
      local granted = min(ceil(units * min(1, lifetime_ms * 1000 / lifetime)), floor(remaining / LEASE_SHARE))
      granted = granted - granted % cost  -- whole requests' worth: less could never be spent
      if lifetime_ms < 1 or granted < 1 then
        granted, lifetime_ms = 0, 0
      end
      return admitted, limit, remaining, remaining > 0 and 0 or to_end_ms, 0,
             format('%d:%d', index, count + granted), not same and format('%d', to_end_ms),
             granted, lifetime_ms, granted > 0 and index or 0
    end
    return admitted, limit, remaining, remaining > 0 and 0 or to_end_ms, admitted < n and to_end_ms or 0,
           format('%d:%d', index, count), not same and format('%d', to_end_ms)
  end

  if with_hand_back then
    -- The units taken back off the count of window `mark`, and the new
    -- state (its TTL unchanged), or 0 once that window has ended.
    fixed_window_hand_back = function(state, window_ms, units, mark)
      if state and mark == floor(now / (window_ms * 1000)) then
        local i, c = match(state, '^(%d+):(%d+)$')
        if i and i + 0 == mark then
          local taken = min(c + 0, units)
          if taken > 0 then
            return taken, format('%d:%d', mark, c - taken)
          end
        end
      end
      return 0
    end
  end
end
