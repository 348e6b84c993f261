-- rate_guard check: a batch of requests, each over one or more zones, in one
-- atomic script. KEYS, ARGV and the reply are described in scripts.h.
-- The requests are decided in order, each seeing what the previous ones
-- recorded. Each request is first evaluated in all its zones without writing
-- anything, then recorded in every zone, and only if all of them allowed it,
-- so a rejected request consumes no quota anywhere.

-- Redis 7 scripting, Lua 5.1: every number is a double. Times are in
-- microseconds unless a name ends in _ms.
--
-- What a check costs is Redis's CPU (bench/script_cost.sh measures it, in µs
-- and, steadier on a busy machine, in instructions under callgrind). Where it
-- goes, per check of a batch of 16, about: EVALSHA itself 7k instructions,
-- one redis.call 4k to 10k (SET ... PX 10k, SET ... KEEPTTL 6k), a Lua
-- function call 0.6k, a closure 1k to 2k (every function below is made anew
-- by each call), tonumber or a %d format 1.5k to 2.5k, a match 2.4k. So:
-- - TIME once per call; the state of sliding_window, fixed_window and
--   token_bucket is one string ("index:current:previous", "index:count",
--   "tat:rem"), read for the whole batch by one MGET and written by one SET;
--   no TYPE: a key of another type is handled where it shows up.
-- - SET ... KEEPTTL when the key already holds this window's state (its TTL,
--   the end of the window or of the next one, is already right): PX makes
--   Redis rewrite the command for propagation.
-- - Numbers go to redis.call as text made here with %d: Redis's own "%.17g"
--   of a Lua number costs more. Texts are read with `+ 0`, cheaper than
--   tonumber, and the zone arguments once per distinct text.
-- - Four functions in all; no table or closure per zone; plain double
--   arithmetic whenever every product stays exact, the exact limb arithmetic
--   made only when a zone needs it.

local KEYS, ARGV = KEYS, ARGV
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local format, match = string.format, string.match
local call = redis.call

-- Set by the main chunk below: the time, the string states of the batch's
-- keys as MGET read them, and what the batch recorded since (see there).
local now, stored, written

-- Products below 2^51 (2251799813685248, written out where used) are exact in
-- a double, and so is the sum of two: when every product a zone needs stays
-- below it (the common case: 100r/m is 100 * 6e7 = 6e9), the plain arithmetic
-- is exact. A quotient of integers below 2^53 also rounds to the right side
-- of every integer, so ceil and floor of it are exact. Past 2^51, a zone is
-- `big`, and takes the exact arithmetic below.

-- ============================================== exact arithmetic, past 2^51

-- Made by exact_arithmetic() when a zone first needs them.
local compare, mulmod, first

local function exact_arithmetic()
  -- A count times a window in microseconds reaches 2^75 (1e9 times a year),
  -- past the 2^53 that a double holds exactly, so such products are compared
  -- exactly in base-2^18 limbs, where every partial product fits.
  local LIMB = 262144

  local function limbs(x)
    local x0 = x % LIMB
    local x1 = ((x - x0) / LIMB) % LIMB
    return x0, x1, (x - x0 - x1 * LIMB) / (LIMB * LIMB)
  end

  -- The sign of (a*b + x) - (c*d + y), for integers 0 <= a, b, c, d, x, y < 2^53.
  compare = function(a, b, x, c, d, y)
    local a0, a1, a2 = limbs(a)
    local b0, b1, b2 = limbs(b)
    local c0, c1, c2 = limbs(c)
    local d0, d1, d2 = limbs(d)
    local x0, x1, x2 = limbs(x)
    local y0, y1, y2 = limbs(y)
    local t = {
      a0 * b0 - c0 * d0 + x0 - y0,
      a0 * b1 + a1 * b0 - c0 * d1 - c1 * d0 + x1 - y1,
      a0 * b2 + a1 * b1 + a2 * b0 - c0 * d2 - c1 * d1 - c2 * d0 + x2 - y2,
      a1 * b2 + a2 * b1 - c1 * d2 - c2 * d1,
      a2 * b2 - c2 * d2,
    }
    -- Carry until limbs 1..4 lie in [0, LIMB): the top limb then has the sign
    -- of the whole, and when it is 0 the rest is non-negative.
    for i = 1, 4 do
      local carry = floor(t[i] / LIMB)
      t[i] = t[i] - carry * LIMB
      t[i + 1] = t[i + 1] + carry
    end
    if t[5] ~= 0 then
      return t[5] > 0 and 1 or -1
    end
    for i = 4, 1, -1 do
      if t[i] ~= 0 then
        return 1
      end
    end
    return 0
  end

  -- a*b mod m, exact for a, b >= 0 and m <= 2^30 (limits are at most 1e9).
  mulmod = function(a, b, m)
    a, b = a % m, b % m
    local high = floor(b / 32768)
    return ((a * high) % m * 32768 + a * (b - high * 32768)) % m
  end

  -- The smallest integer n >= 0 for which ok(n) holds, ok being false and
  -- then true. `guess` comes from double arithmetic, off by a unit or two at
  -- most: the exact ok() settles the answer, so that what the reply announces
  -- agrees with what the script decides. The step cap only keeps a bug from
  -- spinning.
  first = function(guess, ok)
    local n = max(0, ceil(guess))
    local steps = 0
    while n > 0 and steps < 100 and ok(n - 1) do
      n = n - 1
      steps = steps + 1
    end
    while steps < 100 and not ok(n) do
      n = n + 1
      steps = steps + 1
    end
    return n
  end
end

-- ==================================== when a request passes: the reset time

-- Whether a request of cost c passes at time t >= now, nothing else being
-- recorded, in a zone of window `window` (µs):
-- - sliding_window (kind 0): x and y are the current and previous counts of
--   window z. In the next window x becomes the previous count, after it both
--   are 0. The estimate prev * (window - elapsed) / window + cur, plus c, must
--   stay within limit; multiplied by window: prev*(window - elapsed) <= room*window.
-- - token_bucket (kind 3): the TAT is x + y/limit, the burst z. There must be
--   (TAT - t) + c*T <= z*T, in 1/limit microseconds (see token_bucket).
-- `big`: some product may reach 2^51.
local function passes(kind, t, x, y, c, limit, window, z, big)
  if kind == 0 then
    local i = floor(t / window)
    if i == z + 1 then
      x, y = 0, x
    elseif i > z + 1 then
      x, y = 0, 0
    end
    local room = limit - x - c
    if room < 0 then
      return false
    end
    local overlap = window - (t - i * window)
    if big then
      return compare(y, overlap, 0, room, window, 0) <= 0
    end
    return y * overlap <= room * window
  end
  if x < t then
    return c <= z
  end
  if big then
    return compare(x - t, limit, y, z - c, window, 0) <= 0
  end
  return (x - t) * limit + y <= (z - c) * window
end

-- The smallest whole number of ms after which passes(kind, ...) holds, as
-- first() does, from a guess in double arithmetic. For sliding_window, the
-- estimate falls linearly through this window; if it cannot fall low enough
-- here, it does in the next one.
local function wait_ms(kind, x, y, c, limit, window, z, big)
  local guess
  if kind == 0 then
    local next_start = (z + 1) * window
    local room, at = limit - x - c, now
    if room >= 0 and y > 0 then
      at = next_start - room * window / y
    end
    if room < 0 or at >= next_start then
      at = next_start
      if x > 0 then
        at = at + max(0, window - (limit - c) * window / x)
      end
    end
    guess = at - now
  else
    guess = ((x - now) * limit + y - (z - c) * window) / limit
  end
  local n = max(0, ceil(guess / 1000))
  local steps = 0
  while n > 0 and steps < 100 and passes(kind, now + (n - 1) * 1000, x, y, c, limit, window, z, big) do
    n = n - 1
    steps = steps + 1
  end
  while steps < 100 and not passes(kind, now + n * 1000, x, y, c, limit, window, z, big) do
    n = n + 1
    steps = steps + 1
  end
  return n
end

-- ================================================================ algorithms

-- One zone of a request: the zone of the k-th key, of algorithm `algorithm`
-- (the codes of zone_config.h), evaluated at `now`, writing nothing. Returns
-- allowed, limit, remaining and reset_ms (see ZoneVerdict in decision.h), then,
-- for an allowed request, what recording it takes (see the main loop). A
-- zone's verdict is its own: when another zone rejects the request, nothing
-- is recorded, but a zone that allowed it still reports what it would have
-- had left. Whole ms are rounded up, the division being exact (see above).
local function decide(algorithm, k, limit, window_ms, burst, cost)
  local window = window_ms * 1000

  if algorithm == 1 then
    -- sliding_log: a sorted set of request times, exact. Every entry has its
    -- own score, strictly increasing, so the member can simply be the score.
    -- ZCOUNT comes first: a key of another type (the zone's algorithm changed
    -- in a reload) answers WRONGTYPE there, reads as empty, and is replaced
    -- when a request is recorded. Returns the first new entry's time, the TTL
    -- in ms as text, `gone` as text, and whether the key must be replaced.
    local key = KEYS[k]
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

  -- The others keep a string. MGET reads a key of another type as nil, and a
  -- key may hold another algorithm's string: both read as empty (the patterns
  -- below do not match), and SET replaces them. Allowed, they return the new
  -- state, and its TTL in ms as text, or false when the key already holds
  -- this window's state and the TTL that goes with it.
  local state = written[KEYS[k]]
  if state == nil then
    state = stored[k]
  end

  if algorithm == 0 then
    -- sliding_window: the counts of the current and the previous aligned
    -- windows, as "index:current:previous". The previous count is weighted by
    -- its overlap with the sliding window, as if its requests had been spread
    -- evenly: estimate = previous * (window - elapsed) / window + current.
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
    local big = max(limit, current, previous) * window >= 2251799813685248
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
    -- passes(0, now, ...), written out
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
             wait_ms(0, current, previous, cost, limit, window, index, big)
    end
    local remaining = room - weighted
    local reset_ms = 0
    if remaining <= 0 then
      reset_ms = wait_ms(0, current + cost, previous, 1, limit, window, index, big)
    end
    -- The current count is used, as the previous one, until the next window ends.
    return true, limit, remaining, reset_ms, format('%d:%d:%d', index, current + cost, previous),
           not same and format('%d', ceil(((index + 2) * window - now) / 1000))
  end

  if algorithm == 2 then
    -- fixed_window: one counter per aligned window, kept with the window's
    -- index as "index:count".
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

  -- token_bucket: GCRA. A request of cost c moves the theoretical arrival
  -- time (TAT) c*T later, T = window/limit being the emission interval; it is
  -- allowed if the new TAT stays within the tolerance burst*T of now. T is
  -- seldom a whole number of microseconds, and rounding would drift with
  -- every request, so the TAT is kept exactly: `tat` whole microseconds plus
  -- rem/limit of one (0 <= rem < limit), as "tat:rem". Counted in 1/limit
  -- microseconds, T is exactly `window`.
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
  -- (tat - now) * limit, the later TATs adding less than 2^51.
  local big = max(limit, burst, cost) * window >= 2251799813685248 or
              (tat - now) * limit >= 2251799813685248

  -- Whole tokens in the bucket now: burst - ceil((TAT - now) / T). And the
  -- TAT once this request is recorded: cost*T = whole + part/limit us.
  local spent, whole, part
  if big then
    if not compare then
      exact_arithmetic()
    end
    spent = first(((tat - now) * limit + rem) / window, function(n)
      return compare(n, window, 0, tat - now, limit, rem) >= 0
    end)
    whole = first(cost * window / limit - 1, function(n)
      return compare(n + 1, limit, 0, cost, window, 0) > 0
    end)
    part = mulmod(cost, window, limit)
  else
    spent = ceil(((tat - now) * limit + rem) / window)
    local cost_window = cost * window
    whole = floor(cost_window / limit)
    part = cost_window - whole * limit
  end
  local tokens = max(0, burst - spent)

  if cost > burst then
    return false, burst, tokens, window_ms
  end
  -- passes(3, now, ...), written out: here tat >= now
  local fits
  if big then
    fits = compare(tat - now, limit, rem, burst - cost, window, 0) <= 0
  else
    fits = (tat - now) * limit + rem <= (burst - cost) * window
  end
  if not fits then
    return false, burst, tokens, wait_ms(3, tat, rem, cost, limit, window, burst, big)
  end
  local new_tat, new_rem = tat + whole, rem + part
  if new_rem >= limit then
    new_tat, new_rem = new_tat + 1, new_rem - limit
  end
  local remaining = tokens - cost
  local reset_ms = 0
  if remaining <= 0 then
    reset_ms = wait_ms(3, new_tat, new_rem, 1, limit, window, burst, big)
  end
  -- The state matters until the TAT: then the bucket is full, as for a new key.
  -- (%d holds integers below 2^63; a TAT centuries ahead takes %.0f.)
  local ttl = ceil((new_tat - now + (new_rem > 0 and 1 or 0)) / 1000)
  if ttl < 1e15 then
    return true, burst, remaining, reset_ms, format('%d:%d', new_tat, new_rem), format('%d', ttl)
  end
  return true, burst, remaining, reset_ms, format('%.0f:%d', new_tat, new_rem), format('%.0f', ttl)
end

-- ========================================================== the batch

-- Every argument is checked, and turned into a number in place, before
-- anything is written: an error reply means that nothing was recorded.
-- Texts are read with `+ 0`: one that is no number at all stops the script
-- with Lua's own error, an error reply too. The zones of a batch mostly
-- repeat one another's arguments: the same strings (Lua's are interned: ==
-- compares pointers) are checked once. The bounds (counts up to 2^30,
-- windows up to 2^40 ms, past the parser's 1e9 and one year) keep every time
-- below 2^53 microseconds and mulmod exact.
local key_count, arg_count = #KEYS, #ARGV
now = ARGV[1]
if now == '0' then
  now = 0
else
  now = now + 0
  if now < 0 or now % 1 ~= 0 then
    return redis.error_reply('rate_guard: bad time ' .. ARGV[1])
  end
end
local requests = ARGV[2]
if requests == '1' then
  requests = 1
else
  requests = requests + 0
end
if requests % 1 ~= 0 or requests < 0 or requests > key_count then
  return redis.error_reply('rate_guard: bad request count ' .. ARGV[2])
end

local MAX_COUNT, MAX_WINDOW_MS = 1073741824, 1099511627776
local at, keys, strings = 3, 0, false
local a_text, l_text, w_text, b_text, c_text = false, false, false, false, false
local algorithm, limit, window_ms, burst, cost
for r = 1, requests do
  local zones = ARGV[at]
  if zones == '1' then
    zones = 1
  else
    zones = zones + 0
  end
  if zones % 1 ~= 0 or zones < 1 or zones > key_count - keys then
    return redis.error_reply('rate_guard: bad zone count for request ' .. r)
  end
  ARGV[at] = zones
  at = at + 1
  for z = 1, zones do
    local a, l, w, b, c = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
    if a ~= a_text or l ~= l_text or w ~= w_text or b ~= b_text or c ~= c_text then
      algorithm, limit, window_ms, burst, cost = a + 0, l + 0, w + 0, b + 0, c + 0
      if not (algorithm % 1 == 0 and algorithm >= 0 and algorithm <= 3
              and limit % 1 == 0 and limit >= 1 and limit <= MAX_COUNT
              and window_ms % 1 == 0 and window_ms >= 1 and window_ms <= MAX_WINDOW_MS
              and burst % 1 == 0 and burst >= 0 and burst <= MAX_COUNT
              and cost % 1 == 0 and cost >= 1 and cost <= MAX_COUNT) then
        return redis.error_reply('rate_guard: bad arguments for zone ' .. z .. ' of request ' .. r)
      end
      a_text, l_text, w_text, b_text, c_text = a, l, w, b, c
      strings = strings or algorithm ~= 1
    end
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4] =
      algorithm, limit, window_ms, burst, cost
    at = at + 5
  end
  keys = keys + zones
end
if keys ~= key_count or at - 1 ~= arg_count then
  return redis.error_reply('rate_guard: ' .. key_count .. ' keys and ' .. arg_count ..
                           ' arguments for ' .. requests .. ' requests')
end
if requests == 0 then
  return {}
end

if now == 0 then
  -- One clock for the whole fleet: Redis's, read once for the whole batch.
  local time = call('TIME')
  now = time[1] * 1000000 + time[2]
end

-- The string states of every key, read at once (unpack() is bounded by Lua's
-- C stack: 1000 keys a call). `written` holds what this batch recorded since
-- (false: a sorted set now), for a key that comes again.
stored = false
if strings then
  if key_count <= 1000 then
    stored = call('MGET', unpack(KEYS))
  else
    stored = {}
    for from = 1, key_count, 1000 do
      local part = call('MGET', unpack(KEYS, from, min(key_count, from + 999)))
      for i = 1, #part do
        stored[from + i - 1] = part[i]
      end
    end
  end
end
written = {}

-- Redis truncates numbers in replies to integers; all of these are whole.
local reply, n = {}, 0
-- What recording each zone of the current request takes, 7 slots a zone.
local pending = {}
at, keys = 3, 0
for _ = 1, requests do
  local zones = ARGV[at]
  at = at + 1
  -- Every zone first, then the request everywhere, or nowhere.
  local all = true
  for z = 0, zones - 1 do
    local zone_algorithm, zone_cost = ARGV[at], ARGV[at + 4]
    local allowed, zone_limit, remaining, reset_ms, x, y, v, s =
      decide(zone_algorithm, keys + 1 + z, ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], zone_cost)
    reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] =
      allowed and 1 or 0, zone_limit, remaining, reset_ms
    n = n + 4
    if allowed then
      local p = 7 * z
      pending[p + 1], pending[p + 2], pending[p + 3], pending[p + 4] =
        KEYS[keys + 1 + z], zone_algorithm, x, y
      pending[p + 5], pending[p + 6], pending[p + 7] = v, s, zone_cost
    else
      all = false
    end
    at = at + 5
  end
  if all then
    for p = 0, 7 * (zones - 1), 7 do
      local key, x, y = pending[p + 1], pending[p + 3], pending[p + 4]
      if pending[p + 2] ~= 1 then
        -- x: the state, y: its TTL in ms, or false to keep the key's
        if y then
          call('SET', key, x, 'PX', y)
        else
          call('SET', key, x, 'KEEPTTL')
        end
        written[key] = x
      else
        -- x: the first new entry's time, y: the TTL in ms, then `gone`, and
        -- whether the key holds another type
        if pending[p + 6] then
          call('DEL', key)
        else
          call('ZREMRANGEBYSCORE', key, '-inf', pending[p + 5])
        end
        local zone_cost = pending[p + 7]
        if zone_cost == 1 then
          local score = format('%d', x)
          call('ZADD', key, score, score)
        else
          -- unpack() is bounded by Lua's C stack: add at most 500 members a call.
          local args, m = {}, 0
          for i = 0, zone_cost - 1 do
            local score = format('%d', x + i)
            args[m + 1], args[m + 2] = score, score
            m = m + 2
            if m == 1000 or i == zone_cost - 1 then
              call('ZADD', key, unpack(args, 1, m))
              m = 0
            end
          end
        end
        call('PEXPIRE', key, y)
        written[key] = false
      end
    end
  end
  keys = keys + zones
end
return reply
