
-- ================================================================ the batch

if now == 0 then
  -- One clock for the whole fleet: Redis's, read once for the whole batch.
  local time = call('TIME')
  now = time[1] * 1000000 + time[2]
end

-- The string states of every key and the rules of every zone, read at
-- once (also in a batch of sliding_log zones alone, for their rules),
-- MAX_UNPACK keys a call: zone k's state at stored[k] (a sorted set,
-- sliding_log's, reads as false), its rule at stored[zone_keys + k] (false
-- when the key holds none, or no string). `written` holds what this batch
-- recorded since (false: a sorted set now), for a key that comes again.
if key_count <= MAX_UNPACK then
  stored = call('MGET', unpack(KEYS))
else
  stored = {}
  for from = 1, key_count, MAX_UNPACK do
    local part = call('MGET', unpack(KEYS, from, min(key_count, from + MAX_UNPACK - 1)))
    for i = 1, #part do
      stored[from + i - 1] = part[i]
    end
  end
end
written = {}

-- Each zone of a request is decided by its algorithm's function, at `now`,
-- writing nothing, for n requests of it in turn (1 but in a merged entry),
-- each seeing the ones before it. It returns how many of them pass (the
-- first `admitted`, each fitting once the ones before it are counted), the
-- limit, what remains once they are counted, the reset_ms of the last one
-- passed, and the reset_ms of the ones rejected (see ZoneVerdict in
-- decision.h); then, when some pass, what recording them all takes (see
-- below). A zone's verdict is its own: when another zone rejects the
-- request, nothing is recorded, but a zone that allowed it still reports
-- what it would have had left. Whole ms are rounded up, the division being
-- exact (see EXACT).
--
-- The string algorithms (all but sliding_log) take the key's state as MGET
-- read it, or as this batch wrote it. MGET reads a key of another type as
-- nil, and a key may hold another algorithm's string: both read as empty
-- (the algorithms' patterns do not match), and SET replaces them. Some
-- passing, they return the new state, and its TTL in ms as text, or false
-- when the key already holds this window's state and the TTL that goes with
-- it. None passing, they return nothing more, except sliding_window when it
-- converted a state of another window (a reload): that state (without the
-- requests) and its TTL.
--
-- A merged entry is decided and recorded as its n requests one after the
-- other would be: the same admissions, the same verdicts, the same state
-- (tests/redis/check_script_merged_test.cpp replays batches both ways).
--
-- A lease entry is decided as a merged one; the function, given the units
-- wanted and the lifetime allowed (the one wanted, at most a
-- LEASE_WINDOW_DIVISOR-th of the window and MAX_LEASE_LIFETIME_MS), grants
-- some when all n pass, and returns past the rest the units granted, the
-- lifetime in ms and the mark (nothing when it grants nothing); the grant is
-- in the state it returns (sliding_log: entries ending at the mark),
-- recorded with the n. A hand-back is its algorithm's *_hand_back function:
-- the units taken back, and for the string algorithms the new state, of the
-- same window (its TTL kept). Both go their own way below, one zone each: a
-- plain entry costs one comparison more. Lease tests:
-- tests/redis/check_script_lease_test.cpp.
--
-- A charge goes with them: the algorithm's function with `force`, n = 1,
-- its cost admitted whether or not it fits (within the algorithm's bound; a
-- sliding_log charge's cost capped here at the limit) and recorded as a
-- lease entry's n are; what remains may then be below 0, the reply 0.
-- Charge tests: tests/redis/check_script_charge_test.cpp.
--
-- A peek, a zone of cost 0 in a plain entry, is decided as a request of
-- cost 1 and recorded nowhere: it passes with the quota before it (what the
-- cost-1 decision leaves, plus that 1, reset 0), and counts in the
-- request's verdict as any zone does (the others are recorded only if it
-- passes too).
--
-- A zone's rule (read_rule in prelude.lua) comes before its algorithm. In a
-- request, a merged or a lease entry: a ban still on rejects the zone
-- (limit as usual, remaining 0, the wait until the ban's end; no grant);
-- else rate=N/W is the zone's limit and window (token_bucket's burst N too);
-- else rate=unlimited passes it recording nothing (remaining the limit,
-- reset 0; no grant); each adds its event. A charge takes the rate, records
-- nothing under unlimited, and ignores a ban; a hand-back takes the rate's
-- window (that of the grant) only. No events for either. Rule tests:
-- tests/redis/check_script_rules_test.cpp.

-- Redis truncates numbers in replies to integers; all of these are whole.
local reply, n = {}, 0
-- The rule events (RULE_BANNED, RULE_OVERRIDE), e of them, made at the
-- first: they follow every entry's integers.
local events, e = false, 0
-- What recording each zone of the current request takes, PENDING_SLOTS a
-- zone, for those that record something: the key, the algorithm, the cost
-- of all its admitted requests, then the 4 values its function returned
-- past the verdict.
local PENDING_SLOTS = 7
local pending = {}
at, keys = 3, 0
for _ = 1, requests do
  local zones = ARGV[at]
  if zones < MERGED then
    -- A lease entry, a charge or a hand-back: one zone, the ones before it
    -- recorded. a, b, c: the 3 numbers after the header (none for a charge).
    local a, b, c
    local from = at + 1
    if zones ~= CHARGE then
      a, b, c = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
      from = at + 4
    end
    local zone_algorithm, zone_limit, zone_window_ms, zone_burst, zone_cost =
      ARGV[from], ARGV[from + 1], ARGV[from + 2], ARGV[from + 3], ARGV[from + 4]
    local k = keys + 1
    local key = KEYS[k]
    local state = false
    if zone_algorithm ~= SLIDING_LOG then
      state = written[key]
      if state == nil then
        state = stored[k]
      end
    end
    -- The key's rule: a lease entry banned (the ban's end) or unlimited is
    -- decided here, a charge unlimited records nothing.
    local banned, unlimited = false, false
    local rule = stored[zone_keys + k]
    if rule and KEYS[zone_keys + k] == key then
      rule = false  -- sent without its rule key (see below)
    end
    if rule then
      local ban, rate_limit, rate_window_ms
      ban, rate_limit, rate_window_ms, unlimited = read_rule(rule)
      if zones == LEASE and ban and now < ban then
        banned, unlimited = ban, false
      elseif rate_limit then
        zone_limit, zone_window_ms, zone_burst, unlimited = rate_limit, rate_window_ms, rate_limit, false
      end
      if zones == LEASE and (banned or rate_limit or unlimited) then
        if e == 0 then
          events = {}
        end
        e = e + 1
        events[e] = k * 2 + (banned and RULE_BANNED or RULE_OVERRIDE)
      end
    end
    if zones == HAND_BACK then
      -- a: the units given back, b: the units of their grant, c: its mark
      -- (a ban, unlimited: not for a hand-back, which only gives units back)
      local taken, x = 0, false
      if zone_algorithm == SLIDING_LOG then
        taken = sliding_log_hand_back(key, zone_window_ms, a, c)
      elseif zone_algorithm == SLIDING_WINDOW then
        taken, x = sliding_window_hand_back(state, zone_window_ms, a, c)
      elseif zone_algorithm == FIXED_WINDOW then
        taken, x = fixed_window_hand_back(state, zone_window_ms, a, c)
      end
      if x then
        -- the same window's state: its TTL stays right
        call('SET', key, x, 'KEEPTTL')
        written[key] = x
      end
      reply[n + 1] = taken
      n = n + REPLY_FIELDS_PER_HAND_BACK
    elseif banned or unlimited then
      -- Nothing recorded, no grant: a lease entry rejected until the ban's
      -- end, or passed with the zone's limit left; a charge the same.
      local limit_shown = zone_algorithm == TOKEN_BUCKET and zone_burst or zone_limit
      if zones == CHARGE then
        reply[n + 1] = limit_shown
        n = n + REPLY_FIELDS_PER_CHARGE
      else
        if banned then
          reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] =
            0, limit_shown, 0, 0, ceil((banned - now) / 1000)
        else
          reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] = a, limit_shown, limit_shown, 0, 0
        end
        reply[n + 6], reply[n + 7], reply[n + 8] = 0, 0, 0
        n = n + REPLY_FIELDS_PER_LEASE
      end
    else
      -- A lease entry, a: n, b: the units wanted, c: the lifetime wanted in
      -- ms; or a charge, forced.
      local count, units, lifetime, force = a, b, false, false
      if zones == LEASE then
        lifetime = min(c * 1000, zone_window_ms * 1000 / LEASE_WINDOW_DIVISOR, MAX_LEASE_LIFETIME_MS * 1000)
        if lifetime < c * 1000 then
          units = ceil(b * lifetime / (c * 1000))  -- the units wanted for the lifetime wanted, fewer for a shorter one
        end
      else
        count, force = 1, true
        if zone_algorithm == SLIDING_LOG and zone_cost > zone_limit then
          zone_cost = zone_limit  -- at most a window's worth of entries
        end
      end
      local admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, v, s, granted, lifetime_ms, mark
      if zone_algorithm == SLIDING_LOG then
        admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, v, s, granted, lifetime_ms, mark =
          sliding_log(key, zone_limit, zone_window_ms, zone_cost, count, units, lifetime, force)
      elseif zone_algorithm == SLIDING_WINDOW then
        admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, granted, lifetime_ms, mark =
          sliding_window(state, zone_limit, zone_window_ms, zone_cost, count, units, lifetime, force)
      elseif zone_algorithm == FIXED_WINDOW then
        admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, granted, lifetime_ms, mark =
          fixed_window(state, zone_limit, zone_window_ms, zone_cost, count, units, lifetime, force)
      else
        admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, granted, lifetime_ms, mark =
          token_bucket(state, zone_limit, zone_window_ms, zone_burst, zone_cost, count, units, lifetime, force)
      end
      granted = granted or 0
      if force then
        reply[n + 1] = remaining > 0 and remaining or 0
        n = n + REPLY_FIELDS_PER_CHARGE
      else
        reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] =
          admitted, limit_shown, remaining, reset_ms, retry_ms
        reply[n + 6], reply[n + 7], reply[n + 8] = granted, lifetime_ms or 0, mark or 0
        n = n + REPLY_FIELDS_PER_LEASE
      end
      if zone_algorithm ~= SLIDING_LOG then
        -- x: the state (the grant in it), y: its TTL in ms, or false to keep
        -- the key's; none passing, sliding_window's converted state, or nothing
        if x then
          if y then
            call('SET', key, x, 'PX', y)
          else
            call('SET', key, x, 'KEEPTTL')
          end
          written[key] = x
        end
      elseif admitted > 0 then
        -- x: the first new entry's time, y: the TTL in ms, v: `gone`, s:
        -- whether the key holds another type; the grant's entries end at mark
        if s then
          call('DEL', key)
        else
          call('ZREMRANGEBYSCORE', key, '-inf', v)
        end
        -- A score and a member per entry, the n's then the grant's:
        -- MAX_UNPACK / 2 entries a call.
        local total = admitted * zone_cost
        local entries = total + granted
        local args, m = {}, 0
        for i = 0, entries - 1 do
          local score = format('%d', i < total and x + i or mark - entries + 1 + i)
          args[m + 1], args[m + 2] = score, score
          m = m + 2
          if m == MAX_UNPACK or i == entries - 1 then
            call('ZADD', key, unpack(args, 1, m))
            m = 0
          end
        end
        call('PEXPIRE', key, y)
        written[key] = false
      end
    end
    at = from + ARGS_PER_ZONE
    keys = keys + 1
  else
    local merged = zones == MERGED
    local count = 1
    if merged then
      zones, count = 1, ARGV[at + 1]
      at = at + 2
    else
      at = at + 1
    end
    -- Every zone first, then the request everywhere, or nowhere.
    local all, p = true, 0
    for z = 0, zones - 1 do
      local zone_algorithm, zone_limit, zone_window_ms, zone_burst, zone_cost =
        ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
      local k = keys + 1 + z
      local key = KEYS[k]
      local admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, v, s
      local peek = zone_cost == 0
      if peek then
        zone_cost = 1
      end
      -- The key's rule: a ban or unlimited decides the zone here (no
      -- algorithm then: zone_algorithm false). A rule key that is the
      -- state key itself stands for none: while its slot migrates a zone
      -- goes alone, its state key twice (Redis Cluster's ASKING takes a
      -- command of several keys only where all of them exist, and a rule
      -- key seldom does), its rule ignored for those moments.
      local rule = stored[zone_keys + k]
      if rule and KEYS[zone_keys + k] == KEYS[k] then
        rule = false
      end
      if rule then
        local ban, rate_limit, rate_window_ms, unlimited = read_rule(rule)
        local event = RULE_OVERRIDE
        if ban and now < ban then
          limit_shown = zone_algorithm == TOKEN_BUCKET and zone_burst or zone_limit
          admitted, remaining, reset_ms, retry_ms = 0, 0, 0, ceil((ban - now) / 1000)
          zone_algorithm, event = false, RULE_BANNED
        elseif rate_limit then
          zone_limit, zone_window_ms, zone_burst = rate_limit, rate_window_ms, rate_limit
        elseif unlimited then
          -- (a peek too: the limit remains, none of it taken back)
          limit_shown = zone_algorithm == TOKEN_BUCKET and zone_burst or zone_limit
          admitted, remaining, reset_ms, retry_ms = count, limit_shown, 0, 0
          zone_algorithm, peek = false, false
        else
          event = false
        end
        if event then
          if e == 0 then
            events = {}
          end
          e = e + 1
          events[e] = k * 2 + event
        end
      end
      if zone_algorithm == SLIDING_LOG then
        admitted, limit_shown, remaining, reset_ms, retry_ms, x, y, v, s =
          sliding_log(key, zone_limit, zone_window_ms, zone_cost, count)
      elseif zone_algorithm then
        local state = written[key]
        if state == nil then
          state = stored[k]
        end
        if zone_algorithm == SLIDING_WINDOW then
          admitted, limit_shown, remaining, reset_ms, retry_ms, x, y =
            sliding_window(state, zone_limit, zone_window_ms, zone_cost, count)
        elseif zone_algorithm == FIXED_WINDOW then
          admitted, limit_shown, remaining, reset_ms, retry_ms, x, y =
            fixed_window(state, zone_limit, zone_window_ms, zone_cost, count)
        else
          admitted, limit_shown, remaining, reset_ms, retry_ms, x, y =
            token_bucket(state, zone_limit, zone_window_ms, zone_burst, zone_cost, count)
        end
      end
      if peek and admitted > 0 then
        -- the quota before the request, and nothing to record
        remaining, reset_ms, x = remaining + 1, 0, false
      end
      if merged then
        reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] =
          admitted, limit_shown, remaining, reset_ms, retry_ms
        n = n + REPLY_FIELDS_PER_MERGED
      elseif admitted > 0 then
        reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = ALLOWED, limit_shown, remaining, reset_ms
        n = n + REPLY_FIELDS_PER_ZONE
      else
        reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = REJECTED, limit_shown, remaining, retry_ms
        n = n + REPLY_FIELDS_PER_ZONE
      end
      if admitted > 0 then
        -- x: what to record, none for a peek or under unlimited
        if x then
          pending[p + 1], pending[p + 2], pending[p + 3], pending[p + 4] = key, zone_algorithm, admitted * zone_cost, x
          pending[p + 5], pending[p + 6], pending[p + 7] = y, v, s
          p = p + PENDING_SLOTS
        end
      else
        all = false
        if x then
          -- A rejection that still rewrites the key: sliding_window's state
          -- converted from another window, without this request (see
          -- convert() in sliding_window.lua). x: the state, y: its TTL in ms.
          call('SET', key, x, 'PX', y)
          written[key] = x
        end
      end
      at = at + ARGS_PER_ZONE
    end
    if all then
      for q = 0, p - PENDING_SLOTS, PENDING_SLOTS do
        local key, x, y = pending[q + 1], pending[q + 4], pending[q + 5]
        if pending[q + 2] ~= SLIDING_LOG then
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
          if pending[q + 7] then
            call('DEL', key)
          else
            call('ZREMRANGEBYSCORE', key, '-inf', pending[q + 6])
          end
          local zone_cost = pending[q + 3]  -- of all the admitted requests
          if zone_cost == 1 then
            local score = format('%d', x)
            call('ZADD', key, score, score)
          else
            -- A score and a member per entry: MAX_UNPACK / 2 entries a call.
            local args, m = {}, 0
            for i = 0, zone_cost - 1 do
              local score = format('%d', x + i)
              args[m + 1], args[m + 2] = score, score
              m = m + 2
              if m == MAX_UNPACK or i == zone_cost - 1 then
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
end
-- The rule events, after every entry's integers.
for i = 1, e do
  reply[n + i] = events[i]
end
return reply
