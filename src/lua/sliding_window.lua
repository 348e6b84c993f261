
-- =========================================================== sliding_window

-- SUB_WINDOWS counts per key, one per sub-window of span = ceil(window /
-- SUB_WINDOWS) µs, aligned (sub-window x is [x * span, (x + 1) * span)). At a
-- time t of sub-window i, the estimate is the sum of the counts of the
-- SUB_WINDOWS + 1 sub-windows i - SUB_WINDOWS .. i: the oldest, only partly
-- inside (t - window, t], is counted whole. A request of cost c passes iff
-- estimate + c <= limit.
--
-- Never over: take any interval (s, s + window] and the last request admitted
-- in it, at t, in sub-window i. Sub-window i - SUB_WINDOWS starts at
-- (i - SUB_WINDOWS) * span <= t - SUB_WINDOWS * span <= t - window < s, so
-- every request admitted in (s, t] was in the estimate when t was admitted:
-- together they are at most limit. Under: a request holds its quota until its
-- sub-window leaves the estimate, at most span (+ SUB_WINDOWS µs of rounding)
-- longer than the window, so a client steadily at the limit gets at least
-- window / (window + span), about SUB_WINDOWS / (SUB_WINDOWS + 1), of it.
-- No product here reaches 2^53 (times below 2^53, counts below 2^35): plain
-- arithmetic throughout.
--
-- The state, packed by Redis's struct library: a tag, the span, the index of
-- the newest sub-window, then SLOTS counts in a ring (sub-window x in slot
-- x % SLOTS). It lives at a key of its own ("<zone>@sw2", see redis_key.h),
-- which the previous release, whose two-counter "index:current:previous"
-- sat at "<zone>", never reads: in a fleet being upgraded each version counts
-- its own servers' requests. Were the two ever to meet at one key, neither
-- would misread the other: the tag is no digit, so no pattern of the
-- earlier layouts (that one, and fixed_window's and token_bucket's "a:b")
-- matches it, and this script reads them all as empty.
--
-- A lease's units are charged to the sub-window i of the grant, and counted
-- until (i + SLOTS) * span: the lease lives at most until (i + SLOTS) * span
-- - window. A unit spent at u <= (i + SLOTS) * span - window is then in the
-- estimate of every later decision at t that must count it (u > t - window:
-- t < (i + SLOTS) * span, so i >= index(t) - SUB_WINDOWS); the bound above
-- holds with the grant's decision as the one its units were admitted by.
-- Its mark is i. A hand-back takes units off sub-window i's count while i is
-- in the ring: units never spent, so what the count still holds covers the
-- ones spent.
--
-- A charge (force) adds its units to the current sub-window whatever the
-- estimate: the count may then pass the limit, until 4294967295 (MAX_SLOT,
-- what an I4 holds) in a sub-window, and every request waits until enough
-- of the oldest sub-windows have left for it to fit again.
--
-- sliding_window(state, limit, window_ms, cost, n, units, lifetime, force):
-- one zone, n requests of it, and for a lease entry the units wanted and the
-- lifetime allowed in µs, for a charge force, as the other algorithms' (see
-- batch.lua), made only when the batch has a zone of it.
-- sliding_window_hand_back(state, window_ms, units, mark), made only when
-- the batch has a hand-back.
local sliding_window, sliding_window_hand_back
if with_sliding_window then
  local SUB_WINDOWS = 16
  local SLOTS = SUB_WINDOWS + 1
  -- In the table a state unpacks to: 1 the tag, 2 the span, 3 the newest
  -- index, FIRST .. LAST the ring, then struct.unpack's next position.
  local FIRST, LAST = 4, SLOTS + 3
  -- Little-endian: the tag (1 byte), two doubles, SLOTS uint32 (written
  -- out: string.rep per call costs more), SIZE = 1 + 16 + 4 * SLOTS bytes.
  local TAG = 'W'
  local FORMAT = '<c1ddI4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4'
  local SIZE = 85
  local MAX_SLOT = 4294967295
  local pack, unpack_state = struct.pack, struct.unpack

  -- Adds n requests made at time `at` (at most now) to the ring of sub-window
  -- `index`, where the estimate still counts them; a slot gets no more than
  -- `limit` here (a count of limit already rejects every request while it is
  -- counted, so capping it changes no decision, and keeps I4 from wrapping;
  -- a charge's debt past the limit is not carried into another span).
  local function add_at(counts, index, span, at, n, limit)
    local x = floor(min(at, now) / span)
    if n > 0 and x > index - SLOTS then
      local slot = x % SLOTS + FIRST
      counts[slot] = min(limit, counts[slot] + n)
    end
  end

  -- Counts of another span (the zone's window changed in a reload) into an
  -- empty ring of sub-window `index`: each charged as made at the latest
  -- moment it can have been, so that it stays in the estimate at least as
  -- long as if it had been recorded with this span. Anything else reads as
  -- empty. Whether there was anything to convert: the converted state is
  -- then written even if the request is rejected, so that the wait
  -- announced from it holds (read again later, the old span's newest
  -- sub-window would be charged later still).
  local function convert(counts, state, index, span, limit)
    if #state == SIZE then
      local old = {unpack_state(FORMAT, state)}
      if old[1] == TAG then
        local old_span, newest = old[2], old[3]
        for x = newest - SUB_WINDOWS, newest do
          add_at(counts, index, span, (x + 1) * old_span - 1, old[x % SLOTS + FIRST], limit)
        end
        return true
      end
    end
    return false
  end

  -- reset_ms when the oldest counts must leave before `excess` more fits:
  -- sub-window x leaves the estimate at (x + SLOTS) * span (all of them, the
  -- newest last, when the estimate is over the limit by more than it holds).
  local function wait(counts, index, span, excess)
    local gone, x = 0, index - SUB_WINDOWS
    while true do
      gone = gone + counts[x % SLOTS + FIRST]
      if gone >= excess or x == index then
        break
      end
      x = x + 1
    end
    return ceil(((x + SLOTS) * span - now) / 1000)
  end

  sliding_window = function(state, limit, window_ms, cost, n, units, lifetime, force)
    local window = window_ms * 1000
    local span = ceil(window / SUB_WINDOWS)
    local index = floor(now / span)
    local counts, same, converted = false, false, false
    if state and #state == SIZE then
      counts = {unpack_state(FORMAT, state)}
      local newest = counts[3]
      if counts[1] ~= TAG or counts[2] ~= span then
        counts = false
      elseif newest >= index then
        -- (later only if Redis's clock stepped back: keep counting them all)
        index, same = newest, true
      elseif newest > index - SLOTS then
        for x = newest + 1, index do
          counts[x % SLOTS + FIRST] = 0
        end
      else
        counts = false
        state = false
      end
    end
    if not counts then
      counts = {TAG, span, index}
      for slot = FIRST, LAST do
        counts[slot] = 0
      end
      if state then
        converted = convert(counts, state, index, span, limit)
      end
    end

    local estimate = 0
    for slot = FIRST, LAST do
      estimate = estimate + counts[slot]
    end
    if cost > limit and not force then
      return 0, limit, max(0, limit - estimate), 0, window_ms
    end
    -- The n requests in turn: the first `admitted` fit, each seeing the ones
    -- before it (a charge: all, whether or not they fit).
    local admitted = force and n or min(n, floor((limit - estimate) / cost))
    if admitted <= 0 then
      local retry_ms = wait(counts, index, span, estimate + cost - limit)
      if converted then
        return 0, limit, max(0, limit - estimate), 0, retry_ms,
               pack(FORMAT, TAG, span, index, unpack(counts, FIRST, LAST)),
               format('%d', ceil(((index + SLOTS) * span - now) / 1000))
      end
      return 0, limit, max(0, limit - estimate), 0, retry_ms
    end
    local slot = index % SLOTS + FIRST
    local count = counts[slot] + admitted * cost
    if count > MAX_SLOT then
      count = MAX_SLOT  -- (a charge's, long past the limit)
    end
    counts[slot] = count
    -- (below 0 after a charge over the limit: what the next request waits for)
    local remaining = limit - estimate - admitted * cost
    local retry_ms = 0
    if admitted < n then
      retry_ms = wait(counts, index, span, cost - remaining)
    end
    local reset_ms = remaining > 0 and 0 or wait(counts, index, span, 1 - remaining)
    if units and admitted == n then
      -- A lease: charged to this sub-window (see above), so it ends by
      -- (index + SLOTS) * span - window.
      local lifetime_ms = floor(min(lifetime, (index + SLOTS) * span - window - now) / 1000)
      -- the units wanted for the lifetime wanted, fewer for a shorter one
      local granted = min(ceil(units * min(1, lifetime_ms * 1000 / lifetime)), floor(remaining / LEASE_SHARE))
      granted = granted - granted % cost  -- whole requests' worth: less could never be spent
      if lifetime_ms < 1 or granted < 1 then
        granted, lifetime_ms = 0, 0
      end
      counts[slot] = counts[slot] + granted
      return admitted, limit, remaining, reset_ms, retry_ms,
             pack(FORMAT, TAG, span, index, unpack(counts, FIRST, LAST)),
             not same and format('%d', ceil(((index + SLOTS) * span - now) / 1000)),
             granted, lifetime_ms, granted > 0 and index or 0
    end
    -- The state matters until its newest sub-window leaves the estimate.
    return admitted, limit, remaining, reset_ms, retry_ms,
           pack(FORMAT, TAG, span, index, unpack(counts, FIRST, LAST)),
           not same and format('%d', ceil(((index + SLOTS) * span - now) / 1000))
  end

  if with_hand_back then
    -- The units taken back off sub-window `mark`, and the new state (its
    -- TTL unchanged: the newest sub-window stays), or 0 once `mark` has
    -- left the ring, or when the key holds no state of this span.
    sliding_window_hand_back = function(state, window_ms, units, mark)
      local span = ceil(window_ms * 1000 / SUB_WINDOWS)
      if state and #state == SIZE then
        local counts = {unpack_state(FORMAT, state)}
        local newest = counts[3]
        if counts[1] == TAG and counts[2] == span and mark <= newest
           and mark > max(newest, floor(now / span)) - SLOTS then
          local slot = mark % SLOTS + FIRST
          local taken = min(counts[slot], units)
          if taken > 0 then
            counts[slot] = counts[slot] - taken
            return taken, pack(FORMAT, TAG, span, newest, unpack(counts, FIRST, LAST))
          end
        end
      end
      return 0
    end
  end
end
