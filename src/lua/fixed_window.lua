
-- ============================================================= fixed_window

-- One counter per aligned window, kept with the window's index as
-- "index:count".
--
-- fixed_window(state, limit, window_ms, cost): one zone (see batch.lua),
-- made only when the batch has a zone of it.
local fixed_window
if with_fixed_window then
  fixed_window = function(state, limit, window_ms, cost)
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

    if cost > limit then
      return false, limit, max(0, limit - count), window_ms
    end
    local remaining = limit - count - cost
    if remaining < 0 then
      return false, limit, max(0, limit - count), to_end_ms
    end
    return true, limit, remaining, remaining > 0 and 0 or to_end_ms,
           format('%d:%d', index, count + cost), not same and format('%d', to_end_ms)
  end
end
