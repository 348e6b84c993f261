
-- =========================================================== sliding_window

-- The counts of the current and the previous aligned windows, as
-- "index:current:previous". The previous count is weighted by its overlap
-- with the sliding window, as if its requests had been spread evenly:
-- estimate = previous * (window - elapsed) / window + current.
--
-- sliding_window(state, limit, window_ms, cost): one zone, as the other
-- algorithms' (see batch.lua), made only when the batch has a zone of it.
local sliding_window
if with_sliding_window then
  -- Whether a request of cost c passes at time t >= now, nothing else being
  -- recorded, `current` and `previous` being the counts of window `index`.
  -- In the next window the current count becomes the previous one, after it
  -- both are 0. The estimate, plus c, must stay within limit; multiplied by
  -- window: previous * (window - elapsed) <= room * window.
  local function passes(t, current, previous, c, limit, window, index, big)
    local i = floor(t / window)
    if i == index + 1 then
      current, previous = 0, current
    elseif i > index + 1 then
      current, previous = 0, 0
    end
    local room = limit - current - c
    if room < 0 then
      return false
    end
    local overlap = window - (t - i * window)
    if big then
      return compare(previous, overlap, 0, room, window, 0) <= 0
    end
    return previous * overlap <= room * window
  end

  -- The smallest whole number of ms after which passes() holds, as first()
  -- does, from a guess in double arithmetic. The estimate falls linearly
  -- through this window; if it cannot fall low enough here, it does in the
  -- next one.
  local function wait(current, previous, c, limit, window, index, big)
    local next_start = (index + 1) * window
    local room, at = limit - current - c, now
    if room >= 0 and previous > 0 then
      at = next_start - room * window / previous
    end
    if room < 0 or at >= next_start then
      at = next_start
      if current > 0 then
        at = at + max(0, window - (limit - c) * window / current)
      end
    end
    local ms = max(0, ceil((at - now) / 1000))
    local steps = 0
    while ms > 0 and steps < MAX_STEPS and passes(now + (ms - 1) * 1000, current, previous, c, limit, window, index, big) do
      ms = ms - 1
      steps = steps + 1
    end
    while steps < MAX_STEPS and not passes(now + ms * 1000, current, previous, c, limit, window, index, big) do
      ms = ms + 1
      steps = steps + 1
    end
    return ms
  end

  sliding_window = function(state, limit, window_ms, cost)
    local window = window_ms * 1000
    local index = floor(now / window)
    local current, previous, same = 0, 0, false
    if state then
      local i, c, p = match(state, '^(%d+):(%d+):(%d+)$')
      if i then
        i = i + 0
        if i == index then
          current, previous, same = c + 0, p + 0, true
        elseif i == index - 1 then
          previous = c + 0
        end
      end
    end
    -- Every product is at most max(limit, current, previous) * window.
    local big = max(limit, current, previous) * window >= EXACT
    if big and not compare then
      exact_arithmetic()
    end

    -- ceil(previous * (window - elapsed) / window): remaining is rounded down.
    local overlap = window - (now - index * window)
    local weighted
    if big then
      weighted = first(previous * overlap / window, function(w)
        return compare(w, window, 0, previous, overlap, 0) >= 0
      end)
    else
      weighted = ceil(previous * overlap / window)
    end

    if cost > limit then
      return false, limit, max(0, limit - current - weighted), window_ms
    end
    -- passes(now, ...), written out
    local room = limit - current - cost
    local fits = room >= 0
    if fits then
      if big then
        fits = compare(previous, overlap, 0, room, window, 0) <= 0
      else
        fits = previous * overlap <= room * window
      end
    end
    if not fits then
      return false, limit, max(0, limit - current - weighted),
             wait(current, previous, cost, limit, window, index, big)
    end
    local remaining = room - weighted
    local reset_ms = 0
    if remaining <= 0 then
      reset_ms = wait(current + cost, previous, 1, limit, window, index, big)
    end
    -- The current count is used, as the previous one, until the next window ends.
    return true, limit, remaining, reset_ms, format('%d:%d:%d', index, current + cost, previous),
           not same and format('%d', ceil(((index + 2) * window - now) / 1000))
  end
end
