
-- ============================================================= fixed_window

-- One counter per aligned window, kept with the window's index as
-- "index:count".
--
-- fixed_window(state, limit, window_ms, cost, n): one zone, n requests of it
-- (see batch.lua), made only when the batch has a zone of it.
local fixed_window
if with_fixed_window then
  fixed_window = function(state, limit, window_ms, cost, n)
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
      return 0, limit, max(0, limit - count), 0, window_ms
    end
    -- The n requests in turn: the first `admitted` fit, each seeing the ones before it.
    local admitted = min(n, floor((limit - count) / cost))
    if admitted <= 0 then
      return 0, limit, max(0, limit - count), 0, to_end_ms
    end
    count = count + admitted * cost
    local remaining = limit - count
    return admitted, limit, remaining, remaining > 0 and 0 or to_end_ms, admitted < n and to_end_ms or 0,
           format('%d:%d', index, count), not same and format('%d', to_end_ms)
  end
end
