
-- ============================================================= token_bucket

-- GCRA. A request of cost c moves the theoretical arrival time (TAT) c*T
-- later, T = window/limit being the emission interval; it is allowed if the
-- new TAT stays within the tolerance burst*T of now. T is seldom a whole
-- number of microseconds, and rounding would drift with every request, so
-- the TAT is kept exactly: `tat` whole microseconds plus rem/limit of one
-- (0 <= rem < limit), as "tat:rem". Counted in 1/limit microseconds, T is
-- exactly `window`.
--
-- A lease's units are charged as if spent at the end of its lifetime, the
-- latest they can be: the TAT moves on from there (or from where the n left
-- it, if later), and must stay within burst*T of now. So every unit spent,
-- whenever in the lifetime, moved the TAT as much as a request of its own
-- time would have, or more; and no later decision sees a fuller bucket than
-- it would have. Not in the exact arithmetic: a `big` zone grants nothing.
-- Its mark is 0, and a hand-back takes nothing back: once the bucket has
-- filled, the TAT no longer tells which units it holds, and moving it back
-- could admit units over the rate.
--
-- A charge (force) moves the TAT on whatever it says, from max(TAT, now),
-- by at most tokens + burst units: at most a full bucket of debt (the TAT
-- burst*T past the tolerance), which a client then waits out.
--
-- token_bucket(state, limit, window_ms, burst, cost, n, units, lifetime,
-- force): one zone, n requests of it, and for a lease entry the units wanted
-- and the lifetime allowed in µs, for a charge force (see batch.lua), made
-- only when the batch has a zone of it.
local token_bucket
if with_token_bucket then
  -- Whether a request of cost c passes at time t >= now, nothing else being
  -- recorded, the TAT being tat + rem/limit: there must be
  -- (TAT - t) + c*T <= burst*T, in 1/limit microseconds.
  local function passes(t, tat, rem, c, limit, window, burst, big)
    if tat < t then
      return c <= burst
    end
    if big then
      return compare(tat - t, limit, rem, burst - c, window, 0) <= 0
    end
    return (tat - t) * limit + rem <= (burst - c) * window
  end

  -- The smallest whole number of ms after which passes() holds, as first()
  -- does, from a guess in double arithmetic.
  local function wait(tat, rem, c, limit, window, burst, big)
    local ms = max(0, ceil(((tat - now) * limit + rem - (burst - c) * window) / limit / 1000))
    local steps = 0
    while ms > 0 and steps < MAX_STEPS and passes(now + (ms - 1) * 1000, tat, rem, c, limit, window, burst, big) do
      ms = ms - 1
      steps = steps + 1
    end
    while steps < MAX_STEPS and not passes(now + ms * 1000, tat, rem, c, limit, window, burst, big) do
      ms = ms + 1
      steps = steps + 1
    end
    return ms
  end

  token_bucket = function(state, limit, window_ms, burst, cost, n, units, lifetime, force)
    local window = window_ms * 1000
    local tat, rem = now, 0
    if state then
      local t, r = match(state, '^(%d+):(%d+)$')
      if t then
        -- a reload may have lowered the limit: keep rem < limit, a tiny rounding
        tat, rem = t + 0, min(r + 0, limit - 1)
      end
    end
    if tat < now then
      -- a full bucket: idle time beyond that earns nothing
      tat, rem = now, 0
    end
    -- The products are at most max(limit, burst, cost) * window, or
    -- (tat - now) * limit, the later TATs adding less than EXACT.
    local big = max(limit, burst, cost) * window >= EXACT or (tat - now) * limit >= EXACT

    -- Whole tokens in the bucket now: burst - ceil((TAT - now) / T).
    local spent
    if big then
      if not compare then
        exact_arithmetic()
      end
      spent = first(((tat - now) * limit + rem) / window, function(k)
        return compare(k, window, 0, tat - now, limit, rem) >= 0
      end)
    else
      spent = ceil(((tat - now) * limit + rem) / window)
    end
    local tokens = max(0, burst - spent)

    if cost > burst and not force then
      return 0, burst, tokens, 0, window_ms
    end
    -- A request fits, passes(now, ...), iff (TAT - now) + cost*T <= burst*T,
    -- that is (burst - cost being whole) iff cost <= tokens; and each one
    -- passed takes cost*T, exactly cost tokens, from the next. So the n
    -- requests in turn: the first `admitted` fit (a charge: all).
    local admitted = force and n or min(n, floor(tokens / cost))
    if admitted <= 0 then
      return 0, burst, tokens, 0, wait(tat, rem, cost, limit, window, burst, big)
    end
    -- The TAT once they are recorded: total*T = whole + part/limit us
    -- (total <= burst, a charge's <= 2 * burst: products below 2 * EXACT,
    -- still exact, unless `big`).
    local total = admitted * cost
    if force and total > tokens + burst then
      total = tokens + burst
    end
    local whole, part
    if big then
      whole = first(total * window / limit - 1, function(k)
        return compare(k + 1, limit, 0, total, window, 0) > 0
      end)
      part = mulmod(total, window, limit)
    else
      local total_window = total * window
      whole = floor(total_window / limit)
      part = total_window - whole * limit
    end
    local new_tat, new_rem = tat + whole, rem + part
    if new_rem >= limit then
      new_tat, new_rem = new_tat + 1, new_rem - limit
    end
    local remaining = tokens - total  -- (below 0 after a charge past the tokens)
    local reset_ms, retry_ms = 0, 0
    if remaining <= 0 then
      reset_ms = wait(new_tat, new_rem, 1, limit, window, burst, big)
    end
    if admitted < n then
      retry_ms = wait(new_tat, new_rem, cost, limit, window, burst, big)
    end
    if units and admitted == n and not big then
      local lifetime_ms = floor(lifetime / 1000)
      local granted = min(units, floor(remaining / LEASE_SHARE))
      if lifetime_ms >= 1 and granted >= 1 then
        -- The TAT the grant starts from: the end of the lifetime, or the
        -- n's TAT if later (new_tat < ends: the TAT itself is earlier).
        -- At most burst - ceil((that - now) / T) whole tokens fit after it.
        local from, from_rem = new_tat, new_rem
        local ends = now + lifetime_ms * 1000
        if from < ends then
          from, from_rem = ends, 0
        end
        granted = min(granted, burst - ceil(((from - now) * limit + from_rem) / window))
        granted = granted - granted % cost  -- whole requests' worth: less could never be spent
        if granted >= 1 then
          -- (products below EXACT: granted <= burst, from - now <= burst*T or window)
          local granted_window = granted * window
          local whole = floor(granted_window / limit)
          from, from_rem = from + whole, from_rem + granted_window - whole * limit
          if from_rem >= limit then
            from, from_rem = from + 1, from_rem - limit
          end
          return admitted, burst, remaining, reset_ms, retry_ms, format('%d:%d', from, from_rem),
                 format('%d', ceil((from - now + (from_rem > 0 and 1 or 0)) / 1000)), granted, lifetime_ms, 0
        end
      end
    end
    -- The state matters until the TAT: then the bucket is full, as for a new key.
    -- (%d holds integers below 2^63; a TAT centuries ahead takes %.0f.)
    local ttl = ceil((new_tat - now + (new_rem > 0 and 1 or 0)) / 1000)
    if ttl < 1e15 then
      return admitted, burst, remaining, reset_ms, retry_ms, format('%d:%d', new_tat, new_rem), format('%d', ttl)
    end
    return admitted, burst, remaining, reset_ms, retry_ms, format('%.0f:%d', new_tat, new_rem), format('%.0f', ttl)
  end
end
