-- rate_guard check: a batch of requests, each over one or more zones, in one
-- atomic script. KEYS, ARGV and the reply are described in
-- src/lua/check_script.h.
-- The requests are decided in order, each seeing what the previous ones
-- recorded. Each request is first evaluated in all its zones without writing
-- anything, then recorded in every zone, and only if all of them allowed it,
-- so a rejected request consumes no quota anywhere.
-- A merged entry, n requests of one key and zone, is decided as the n one
-- after the other: the first that fit pass, recorded at once. A lease entry
-- is a merged entry that, when all n pass, may also be granted units for the
-- server to spend until the lease ends: recorded with the n, as if spent at
-- whichever moment of the lifetime counts them longest, so that no way of
-- spending them lets the zone over its limit. A hand-back takes units never
-- spent off the count again, where the algorithm can tell them apart.
-- A charge records units after the fact (a response already given): at now,
-- whether or not they fit, so that a client over its limit waits until its
-- debt has left the window; a peek (cost 0) decides a zone as a request of
-- cost 1 and records nothing there.
-- A zone's key may have a rule (a key of its own beside the state, read with
-- the states): a ban rejects it, rate=N/W takes the place of the zone's limit
-- and window, rate=unlimited passes it uncounted (see read_rule below).
--
-- Redis receives one script: the files of check.files, concatenated in that
-- order. This one holds what they share; arguments.lua checks the arguments;
-- sliding_window.lua, sliding_log.lua, fixed_window.lua and token_bucket.lua
-- decide a zone of their algorithm; batch.lua decides and records the batch.
--
-- Redis 7 scripting, Lua 5.1: every number is a double. Times are in
-- microseconds unless a name ends in _ms.
--
-- What a check costs is Redis's CPU (bench/script_cost.sh measures it, in µs
-- and, steadier on a busy machine, in instructions under callgrind). Where it
-- goes, per check of a batch of 16, about: EVALSHA itself 7k instructions,
-- one redis.call 4k to 10k (SET ... PX 10k, SET ... KEEPTTL 6k), a Lua
-- function call 0.6k, a closure 1k to 2.5k (every function is made anew by
-- each call, and costs with the number of outer locals it uses), tonumber or
-- a %d format 1.5k to 2.5k, a match 2.4k. So:
-- - TIME once per call; the state of sliding_window, fixed_window and
--   token_bucket is one string (sub-window counts packed by struct,
--   "index:count", "tat:rem"), read for the whole batch by one MGET (with
--   every zone's rule) and written by one SET; no TYPE: a key of another
--   type is handled where it shows up.
-- - SET ... KEEPTTL when the key already holds this window's state (its TTL,
--   the end of the window or of the next one, is already right): PX makes
--   Redis rewrite the command for propagation.
-- - Numbers go to redis.call as text made here with %d: Redis's own "%.17g"
--   of a Lua number costs more. Texts are read with `+ 0`, cheaper than
--   tonumber, and the zone arguments once per distinct text.
-- - Few functions, and an algorithm's made only when the batch has a zone of
--   it; no table or closure per zone; plain double arithmetic whenever every
--   product stays exact, the exact limb arithmetic made only when a zone
--   needs it. The argument checks and the batch loop are the main chunk's,
--   not functions.

local KEYS, ARGV = KEYS, ARGV
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local format, match = string.format, string.match
local call = redis.call

-- ================================================================ constants

-- The algorithm codes of ARGV, Algorithm's values in src/config/zone_config.h
-- (src/lua/check_script.cpp checks at compile time that the two agree).
local SLIDING_WINDOW = 0
local SLIDING_LOG = 1
local FIXED_WINDOW = 2
local TOKEN_BUCKET = 3

-- ARGV: after a request's zone count, per zone: algorithm, limit, window_ms,
-- burst, cost (kCheckArgsPerZone). The reply, per zone: allowed (ALLOWED or
-- REJECTED), limit, remaining, reset_ms (kCheckReplyFieldsPerZone).
local ARGS_PER_ZONE = 5
local REPLY_FIELDS_PER_ZONE = 4
local ALLOWED, REJECTED = 1, 0
-- A zone count of MERGED starts a merged entry: n requests of one zone, the
-- same key and arguments (n, then the zone's arguments), answered by
-- REPLY_FIELDS_PER_MERGED integers: how many of the n pass, limit, remaining,
-- reset_ms of the last one passed, reset_ms of the ones rejected
-- (kCheckMergedHeader, kCheckReplyFieldsPerMerged).
local MERGED = 0
local REPLY_FIELDS_PER_MERGED = 5
-- A zone count of LEASE starts a lease entry: a merged entry that also asks
-- for a lease (n, the units wanted, the lifetime wanted in ms, then the
-- zone's arguments), answered by a merged entry's integers, then the units
-- granted, the lifetime granted in ms and the grant's mark
-- (REPLY_FIELDS_PER_LEASE). A grant takes at most a LEASE_SHARE-th of what
-- remains once the n are counted, and lives at most a LEASE_WINDOW_DIVISOR-th
-- of the window, less where the algorithm needs (see each one's lease).
-- A zone count of HAND_BACK starts a hand-back: the units given back, the
-- units of their grant, its mark, then the zone's arguments; answered by the
-- units taken back off the count (REPLY_FIELDS_PER_HAND_BACK).
-- (kCheckLeaseHeader, kCheckReplyFieldsPerLease, kCheckHandBackHeader,
-- kCheckReplyFieldsPerHandBack, kLeaseShare.)
local LEASE = -1
local REPLY_FIELDS_PER_LEASE = 8
local HAND_BACK = -2
local REPLY_FIELDS_PER_HAND_BACK = 1
local LEASE_SHARE = 4
local LEASE_WINDOW_DIVISOR = 16
-- A lease lives at most MAX_LEASE_LIFETIME_MS besides: a ban, an unban or an
-- override reaches the keys held in leases within that (kMaxLeaseLifetimeMs).
local MAX_LEASE_LIFETIME_MS = 1000
-- A zone count of CHARGE starts a charge: the zone's arguments, its cost the
-- units charged, recorded at now whether or not they fit; answered by the
-- units remaining after it, 0 when over (the zone's limit under
-- rate=unlimited) (REPLY_FIELDS_PER_CHARGE).
-- (kCheckChargeHeader, kCheckReplyFieldsPerCharge.)
local CHARGE = -3
local REPLY_FIELDS_PER_CHARGE = 1
-- After every entry's integers, one for each zone of a request, merged or
-- lease entry that its key's rule decided: k * 2 + RULE_BANNED (rejected by
-- a ban) or + RULE_OVERRIDE (decided under rate=N/W or rate=unlimited), k
-- the zone's index in KEYS (kRuleBanned, kRuleOverride).
local RULE_BANNED = 0
local RULE_OVERRIDE = 1

-- The bounds of the zone arguments (counts up to 2^30, windows up to 2^40
-- ms, past the parser's 1e9 and one year) keep every time below 2^53
-- microseconds and mulmod exact.
local MAX_COUNT, MAX_WINDOW_MS = 1073741824, 1099511627776

-- A grant's mark is a whole number below 2^53, exact in a double.
local MAX_MARK = 9007199254740992

-- Products below 2^51 are exact in a double, and so is the sum of two: when
-- every product a zone needs stays below EXACT (the common case: 100r/m is
-- 100 * 6e7 = 6e9), the plain arithmetic is exact. A quotient of integers
-- below 2^53 also rounds to the right side of every integer, so ceil and
-- floor of it are exact. Past EXACT, a zone is `big`, and takes the exact
-- arithmetic below.
local EXACT = 2251799813685248

-- The searches of first() and of the algorithms' wait() step at most this
-- far from their guess, off by a unit or two: the cap only keeps a bug from
-- spinning.
local MAX_STEPS = 100

-- unpack() is bounded by Lua's C stack: at most this many values a call.
local MAX_UNPACK = 1000

-- =========================================================== the batch's state

-- Set by the main chunk (arguments.lua, batch.lua): the time, the string
-- states of the batch's keys and the rules of its zones as MGET read them
-- (zone k's state at stored[k], its rule at stored[zone_keys + k]), and what
-- the batch recorded since (see batch.lua).
local now, stored, written

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

  -- a*b mod m, exact for a, b >= 0 and m <= 2^30 (limits are at most 1e9):
  -- b is split in two halves of 15 bits, so every product stays below 2^53.
  local HALF = 32768
  mulmod = function(a, b, m)
    a, b = a % m, b % m
    local high = floor(b / HALF)
    return ((a * high) % m * HALF + a * (b - high * HALF)) % m
  end

  -- The smallest integer n >= 0 for which ok(n) holds, ok being false and
  -- then true. `guess` comes from double arithmetic, off by a unit or two at
  -- most: the exact ok() settles the answer, so that what the reply announces
  -- agrees with what the script decides.
  first = function(guess, ok)
    local n = max(0, ceil(guess))
    local steps = 0
    while n > 0 and steps < MAX_STEPS and ok(n - 1) do
      n = n - 1
      steps = steps + 1
    end
    while steps < MAX_STEPS and not ok(n) do
      n = n + 1
      steps = steps + 1
    end
    return n
  end
end

-- ================================================================ the rules

-- A rule, the value of a zone's rule key (`<prefix><zone>!rule:<client key>`,
-- KEYS[zone_keys + k]) when it is a string: fields separated by single
-- spaces, in any order; an unknown or malformed one is ignored (a later
-- release may add some). Returns the end of a ban in µs (`ban=<ms>`, Unix
-- time in ms on Redis's clock; at most 2^53, the year 2255, so that the
-- wait it announces stays exact), or false; the limit and the window in ms
-- of `rate=<N>/<W>`, or false when there is none or N or W is past the zone
-- arguments' bounds (MAX_COUNT, MAX_WINDOW_MS); and whether `rate=unlimited`
-- is given. Of a field given twice, the first of its form counts. Which
-- applies is the caller's: a ban still on (now < its end), else the rate,
-- else unlimited.
-- Called only for a zone whose key has a rule: a zone without one costs one
-- table index and one test. But, as every function, it is made anew by each
-- call: with no upvalue (each costs 0.3k instructions more a call, 2.1k with
-- the five it would take), it costs 0.5k. So: string methods, not `match`,
-- and the bounds written out (tests/redis/check_script_rules_test.cpp holds
-- them to the constants' values).
local function read_rule(text)
  text = ' ' .. text .. ' '
  local ban = text:match(' ban=(%d+) ')
  if ban then
    ban = ban * 1000
    if ban > 9007199254740992 then
      ban = 9007199254740992
    end
  else
    ban = false
  end
  local limit, window_ms = text:match(' rate=(%d+)/(%d+) ')
  if limit then
    limit, window_ms = limit + 0, window_ms + 0
    if not (limit >= 1 and limit <= 1073741824 and window_ms >= 1 and window_ms <= 1099511627776) then
      limit = false
    end
  else
    limit = false
  end
  return ban, limit, window_ms, text:match(' rate=unlimited ') ~= nil
end
