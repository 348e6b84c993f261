#include "scripts.h"

namespace rate_guard {

// Redis 7 scripting, Lua 5.1: every number is a double. Times are in
// microseconds unless a name ends in _ms.
const std::string_view kCheckScript = R"lua(
-- rate_guard check: every zone of one request in one atomic script.
-- KEYS, ARGV and the reply are described in scripts.h.
-- Phase 1 evaluates every zone without writing anything; phase 2 records the
-- request in every zone, and only if all of them allowed it, so a rejected
-- request consumes no quota anywhere.

-- Lua 5.1's tostring gives "1.7e+15" for big numbers: whatever is stored or
-- sent to Redis goes through fmt.
local function fmt(x)
  return string.format('%.0f', x)
end

-- Whole milliseconds, rounded up, of a span in microseconds. Exact for
-- integers below 2^53: the rounded quotient never crosses an integer.
local function ceil_ms(us)
  return math.ceil(us / 1000)
end

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
local function compare(a, b, x, c, d, y)
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
    local carry = math.floor(t[i] / LIMB)
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
local function mulmod(a, b, m)
  a, b = a % m, b % m
  local high = math.floor(b / 32768)
  return ((a * high) % m * 32768 + a * (b - high * 32768)) % m
end

-- The smallest integer n >= 0 for which ok(n) holds, ok being false and then
-- true. `guess` comes from double arithmetic, off by a unit or two at most:
-- the exact ok() settles the answer, so that what the reply announces agrees
-- with what the script decides. The step cap only keeps a bug from spinning.
local function first(guess, ok)
  local n = math.max(0, math.ceil(guess))
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

local now = tonumber(ARGV[1])
if now == nil or now < 0 then
  return redis.error_reply('rate_guard: bad time ' .. tostring(ARGV[1]))
end
if now == 0 then
  -- One clock for the whole fleet: Redis's.
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- The smallest whole number of ms after which passes(time) holds.
local function wait_ms(guess_us, passes)
  return first(guess_us / 1000, function(ms) return passes(now + ms * 1000) end)
end

-- After a reload that changed a zone's algorithm, its keys may hold another
-- type: such a key reads as empty and is replaced when a request is recorded,
-- rather than failing with WRONGTYPE until it expires.
local function foreign(key, kind)
  local found = redis.call('TYPE', key).ok
  return found ~= 'none' and found ~= kind
end

-- Each algorithm evaluates one zone at `now`, writing nothing, and returns
-- allowed, limit, remaining and reset_ms (see ZoneVerdict in decision.h) with
-- commit(), which records the request. A zone's verdict is its own: when
-- another zone rejects the request, nothing is recorded, but a zone that
-- allowed it still reports what it would have had left.

-- sliding_log: a sorted set of request times, exact. Every entry has its own
-- score, strictly increasing, so the member can simply be the score.
local function sliding_log(key, limit, window_ms, burst, cost)
  local window = window_ms * 1000
  local gone = now - window  -- entries scored at or before it have left the window
  local stale = foreign(key, 'zset')
  local total, count, start = 0, 0, now
  if not stale then
    total = redis.call('ZCARD', key)
    count = redis.call('ZCOUNT', key, '(' .. fmt(gone), '+inf')
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if newest[2] then
      start = math.max(now, tonumber(newest[2]) + 1)
    end
  end

  -- The time of the k-th oldest entry in the window once this request is
  -- recorded: the window holds the set's last `count` entries, then the new ones.
  local function kth(k)
    if k > count then
      return start + (k - count - 1)
    end
    local rank = fmt(total - count + k - 1)
    return tonumber(redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')[2])
  end
  -- ms until the k-th oldest entry has left the window.
  local function until_gone(k)
    return ceil_ms(kth(k) + window - now)
  end

  local v = { limit = limit }
  if cost > limit then
    v.allowed, v.remaining, v.reset_ms = false, math.max(0, limit - count), window_ms
  elseif count + cost <= limit then
    v.allowed, v.remaining, v.reset_ms = true, limit - count - cost, 0
    if v.remaining == 0 then
      v.reset_ms = until_gone(count + cost + 1 - limit)
    end
  else
    -- this request fits once the (count + cost - limit) oldest have left
    v.allowed, v.remaining = false, math.max(0, limit - count)
    v.reset_ms = until_gone(count + cost - limit)
  end

  v.commit = function()
    if stale then
      redis.call('DEL', key)
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(gone))
    -- unpack() is bounded by Lua's C stack: add at most 500 members a call.
    local args = {}
    for i = 0, cost - 1 do
      local score = fmt(start + i)
      args[#args + 1] = score
      args[#args + 1] = score
      if #args == 1000 or i == cost - 1 then
        redis.call('ZADD', key, unpack(args))
        args = {}
      end
    end
    -- The set matters until its newest entry leaves the window.
    redis.call('PEXPIRE', key, fmt(ceil_ms(start + cost - 1 + window - now)))
  end
  return v
end

-- fixed_window: one counter per aligned window, kept with the window's index.
local function fixed_window(key, limit, window_ms, burst, cost)
  local window = window_ms * 1000
  local index = math.floor(now / window)
  local stale = foreign(key, 'hash')
  local count = 0
  if not stale then
    local stored = redis.call('HMGET', key, 'window', 'count')
    if tonumber(stored[1]) == index then
      count = tonumber(stored[2]) or 0
    end
  end
  local to_end_ms = ceil_ms((index + 1) * window - now)

  local v = { limit = limit }
  if cost > limit then
    v.allowed, v.remaining, v.reset_ms = false, math.max(0, limit - count), window_ms
  elseif count + cost <= limit then
    v.allowed, v.remaining = true, limit - count - cost
    v.reset_ms = v.remaining > 0 and 0 or to_end_ms
  else
    v.allowed, v.remaining, v.reset_ms = false, math.max(0, limit - count), to_end_ms
  end

  v.commit = function()
    if stale then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, 'window', fmt(index), 'count', fmt(count + cost))
    -- The count matters until its window ends.
    redis.call('PEXPIRE', key, fmt(to_end_ms))
  end
  return v
end

-- sliding_window: the counts of the current and the previous aligned windows.
-- The previous count is weighted by its overlap with the sliding window, as if
-- its requests had been spread evenly:
--   estimate = previous * (window - elapsed) / window + current.
local function sliding_window(key, limit, window_ms, burst, cost)
  local window = window_ms * 1000
  local index = math.floor(now / window)
  local stale = foreign(key, 'hash')
  local current, previous = 0, 0
  if not stale then
    local stored = redis.call('HMGET', key, 'window', 'current', 'previous')
    local stored_index = tonumber(stored[1])
    if stored_index == index then
      current, previous = tonumber(stored[2]) or 0, tonumber(stored[3]) or 0
    elseif stored_index == index - 1 then
      previous = tonumber(stored[2]) or 0
    end
  end

  -- Whether a request of cost c passes at time t >= now, the counts of window
  -- `index` being cur and prev and nothing else being recorded: in the next
  -- window cur becomes the previous count, after it both are 0.
  local function passes(t, cur, prev, c)
    local i = math.floor(t / window)
    if i == index + 1 then
      cur, prev = 0, cur
    elseif i > index + 1 then
      cur, prev = 0, 0
    end
    local room = limit - cur - c
    -- estimate + c <= limit, multiplied by window: prev*(window - elapsed) <= room*window
    return room >= 0 and compare(prev, window - (t - i * window), 0, room, window, 0) <= 0
  end

  -- ms until a request of cost c passes. The estimate falls linearly through
  -- this window; if it cannot fall low enough here, it does in the next one.
  local function wait(cur, prev, c)
    local room, at = limit - cur - c, now
    if room >= 0 and prev > 0 then
      at = (index + 1) * window - room * window / prev
    end
    if room < 0 or at >= (index + 1) * window then
      at = (index + 1) * window
      if cur > 0 then
        at = at + math.max(0, window - (limit - c) * window / cur)
      end
    end
    return wait_ms(at - now, function(t) return passes(t, cur, prev, c) end)
  end

  -- ceil(previous * (window - elapsed) / window): remaining is rounded down.
  local overlap = window - (now - index * window)
  local weighted = first(previous * overlap / window, function(k)
    return compare(k, window, 0, previous, overlap, 0) >= 0
  end)

  local v = { limit = limit }
  if cost > limit then
    v.allowed, v.remaining, v.reset_ms = false, math.max(0, limit - current - weighted), window_ms
  elseif passes(now, current, previous, cost) then
    v.allowed, v.remaining = true, limit - current - cost - weighted
    v.reset_ms = v.remaining > 0 and 0 or wait(current + cost, previous, 1)
  else
    v.allowed, v.remaining = false, math.max(0, limit - current - weighted)
    v.reset_ms = wait(current, previous, cost)
  end

  v.commit = function()
    if stale then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, 'window', fmt(index), 'current', fmt(current + cost),
               'previous', fmt(previous))
    -- The current count is used, as the previous one, until the next window ends.
    redis.call('PEXPIRE', key, fmt(ceil_ms((index + 2) * window - now)))
  end
  return v
end

-- token_bucket: GCRA. A request of cost c moves the theoretical arrival time
-- (TAT) c*T later, T = window/limit being the emission interval; it is allowed
-- if the new TAT stays within the tolerance burst*T of now. T is seldom a
-- whole number of microseconds, and rounding would drift with every request,
-- so the TAT is kept exactly: `tat` whole microseconds plus rem/limit of one
-- (0 <= rem < limit). Counted in 1/limit microseconds, T is exactly `window`.
local function token_bucket(key, limit, window_ms, burst, cost)
  local window = window_ms * 1000
  local stale = foreign(key, 'hash')
  local tat, rem = now, 0
  if not stale then
    local stored = redis.call('HMGET', key, 'tat', 'rem')
    tat, rem = tonumber(stored[1]) or now, tonumber(stored[2]) or 0
    -- a reload may have lowered the limit: keep rem < limit, a tiny rounding
    rem = math.min(rem, limit - 1)
  end
  if tat < now then
    -- a full bucket: idle time beyond that earns nothing
    tat, rem = now, 0
  end

  -- Whether c tokens are there at time t >= now, the TAT being tat_ + rem_/limit.
  local function passes(t, tat_, rem_, c)
    if tat_ < t then
      return c <= burst
    end
    -- (TAT - t) + c*T <= burst*T, in 1/limit microseconds
    return compare(tat_ - t, limit, rem_, burst - c, window, 0) <= 0
  end
  local function wait(tat_, rem_, c)
    local guess = ((tat_ - now) * limit + rem_ - (burst - c) * window) / limit
    return wait_ms(guess, function(t) return passes(t, tat_, rem_, c) end)
  end

  -- Whole tokens in the bucket now: burst - ceil((TAT - now) / T).
  local spent = first(((tat - now) * limit + rem) / window, function(k)
    return compare(k, window, 0, tat - now, limit, rem) >= 0
  end)
  local tokens = math.max(0, burst - spent)

  -- The TAT once this request is recorded: cost*T = whole + part/limit us.
  local whole = first(cost * window / limit - 1, function(n)
    return compare(n + 1, limit, 0, cost, window, 0) > 0
  end)
  local new_tat, new_rem = tat + whole, rem + mulmod(cost, window, limit)
  if new_rem >= limit then
    new_tat, new_rem = new_tat + 1, new_rem - limit
  end

  local v = { limit = burst }
  if cost > burst then
    v.allowed, v.remaining, v.reset_ms = false, tokens, window_ms
  elseif passes(now, tat, rem, cost) then
    v.allowed, v.remaining = true, tokens - cost
    v.reset_ms = v.remaining > 0 and 0 or wait(new_tat, new_rem, 1)
  else
    v.allowed, v.remaining, v.reset_ms = false, tokens, wait(tat, rem, cost)
  end

  v.commit = function()
    if stale then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, 'tat', fmt(new_tat), 'rem', fmt(new_rem))
    -- The state matters until the TAT: then the bucket is full, as for a new key.
    local left = new_tat - now + (new_rem > 0 and 1 or 0)
    redis.call('PEXPIRE', key, fmt(ceil_ms(left)))
  end
  return v
end

-- Indexed by the Algorithm codes of zone_config.h.
local algorithms = {
  [0] = sliding_window,
  [1] = sliding_log,
  [2] = fixed_window,
  [3] = token_bucket,
}

-- A whole number in [min, max], or nil. The bounds (counts up to 2^30, windows
-- up to 2^40 ms, past the parser's 1e9 and one year) keep every time below
-- 2^53 microseconds and mulmod exact.
local function whole_number(text, min, max)
  local n = tonumber(text)
  if n and n == math.floor(n) and n >= min and n <= max then
    return n
  end
  return nil
end
local MAX_COUNT, MAX_WINDOW_MS = 1073741824, 1099511627776

-- Phase 1: evaluate every zone.
local verdicts = {}
for i = 1, #KEYS do
  local at = 2 + 5 * (i - 1)
  local algorithm = algorithms[tonumber(ARGV[at])]
  local limit = whole_number(ARGV[at + 1], 1, MAX_COUNT)
  local window_ms = whole_number(ARGV[at + 2], 1, MAX_WINDOW_MS)
  local burst = whole_number(ARGV[at + 3], 0, MAX_COUNT)
  local cost = whole_number(ARGV[at + 4], 1, MAX_COUNT)
  if not (algorithm and limit and window_ms and burst and cost) then
    return redis.error_reply('rate_guard: bad arguments for zone ' .. i)
  end
  verdicts[i] = algorithm(KEYS[i], limit, window_ms, burst, cost)
end

-- Phase 2: record the request everywhere, or nowhere.
local allowed = true
for i = 1, #verdicts do
  allowed = allowed and verdicts[i].allowed
end
if allowed then
  for i = 1, #verdicts do
    verdicts[i].commit()
  end
end

-- Redis truncates numbers in replies to integers; all of these are whole.
local reply = {}
for i = 1, #verdicts do
  local v = verdicts[i]
  reply[#reply + 1] = v.allowed and 1 or 0
  reply[#reply + 1] = v.limit
  reply[#reply + 1] = v.remaining
  reply[#reply + 1] = v.reset_ms
end
return reply
)lua";

}  // namespace rate_guard
