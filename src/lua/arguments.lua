
-- ============================================================ the arguments

-- Every argument is checked, and turned into a number in place, before
-- anything is written: an error reply means that nothing was recorded.
-- Texts are read with `+ 0`: one that is no number at all stops the script
-- with Lua's own error, an error reply too. The zones of a batch mostly
-- repeat one another's arguments: the same strings (Lua's are interned: ==
-- compares pointers) are checked once. Sets `now` (0: Redis's TIME, read by
-- batch.lua), `requests` (the entries: a merged one counts once), which
-- algorithms the batch has a zone of, and whether it has a hand-back.
-- KEYS: the state key of every zone of every entry (zone_keys of them), then
-- the rule key of each, in the same order.
local key_count, arg_count = #KEYS, #ARGV
if key_count % 2 ~= 0 then
  return redis.error_reply('rate_guard: ' .. key_count .. ' keys: not a state key and a rule key per zone')
end
local zone_keys = key_count / 2
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
if requests % 1 ~= 0 or requests < 0 or requests > zone_keys then
  return redis.error_reply('rate_guard: bad request count ' .. ARGV[2])
end

local with_sliding_window, with_sliding_log, with_fixed_window, with_token_bucket = false, false, false, false
-- whether the batch has a hand-back: their functions are made only then
local with_hand_back = false
local at, keys = 3, 0
local a_text, l_text, w_text, b_text, c_text = false, false, false, false, false
local algorithm, limit, window_ms, burst, cost
for r = 1, requests do
  local zones = ARGV[at]
  if zones == '1' then
    zones = 1
  else
    zones = zones + 0
  end
  ARGV[at] = zones
  at = at + 1
  -- Only a plain request's zones may cost 0 (a peek, decided as of cost 1
  -- and recorded nowhere): merged requests, a lease, a hand-back or a
  -- charge of nothing is no entry the module sends.
  local peeks = zones >= 1
  if zones < 1 then
    if zones == MERGED then
      -- a merged entry: its request count, then one zone
      local count = ARGV[at]
      count = count + 0
      if count % 1 ~= 0 or count < 1 or count > MAX_COUNT then
        return redis.error_reply('rate_guard: bad merged count for request ' .. r)
      end
      ARGV[at] = count
      at = at + 1
      zones = 1
    elseif zones == LEASE then
      -- a lease entry: its request count, the units wanted, the lifetime
      -- wanted in ms, then one zone
      local count, units, lease_ms = ARGV[at] + 0, ARGV[at + 1] + 0, ARGV[at + 2] + 0
      if not (count % 1 == 0 and count >= 1 and count <= MAX_COUNT
              and units % 1 == 0 and units >= 1 and units <= MAX_COUNT
              and lease_ms % 1 == 0 and lease_ms >= 1 and lease_ms <= MAX_WINDOW_MS) then
        return redis.error_reply('rate_guard: bad lease for request ' .. r)
      end
      ARGV[at], ARGV[at + 1], ARGV[at + 2] = count, units, lease_ms
      at = at + 3
      zones = 1
    elseif zones == HAND_BACK then
      -- a hand-back: the units given back, the units of their grant, its
      -- mark, then one zone
      local units, granted, mark = ARGV[at] + 0, ARGV[at + 1] + 0, ARGV[at + 2] + 0
      if not (units % 1 == 0 and units >= 1 and granted % 1 == 0 and granted >= units
              and granted <= MAX_COUNT and mark % 1 == 0 and mark >= 0 and mark < MAX_MARK) then
        return redis.error_reply('rate_guard: bad hand-back for request ' .. r)
      end
      ARGV[at], ARGV[at + 1], ARGV[at + 2] = units, granted, mark
      at = at + 3
      zones = 1
      with_hand_back = true
    elseif zones == CHARGE then
      -- a charge: one zone, its cost the units charged
      zones = 1
    end
  end
  if zones % 1 ~= 0 or zones < 1 or zones > zone_keys - keys then
    return redis.error_reply('rate_guard: bad zone count for request ' .. r)
  end
  for z = 1, zones do
    local a, l, w, b, c = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
    if a ~= a_text or l ~= l_text or w ~= w_text or b ~= b_text or c ~= c_text then
      algorithm, limit, window_ms, burst, cost = a + 0, l + 0, w + 0, b + 0, c + 0
      if not (algorithm % 1 == 0 and algorithm >= SLIDING_WINDOW and algorithm <= TOKEN_BUCKET
              and limit % 1 == 0 and limit >= 1 and limit <= MAX_COUNT
              and window_ms % 1 == 0 and window_ms >= 1 and window_ms <= MAX_WINDOW_MS
              and burst % 1 == 0 and burst >= 0 and burst <= MAX_COUNT
              and cost % 1 == 0 and cost >= 0 and cost <= MAX_COUNT) then
        return redis.error_reply('rate_guard: bad arguments for zone ' .. z .. ' of request ' .. r)
      end
      a_text, l_text, w_text, b_text, c_text = a, l, w, b, c
      if algorithm == SLIDING_WINDOW then
        with_sliding_window = true
      elseif algorithm == SLIDING_LOG then
        with_sliding_log = true
      elseif algorithm == FIXED_WINDOW then
        with_fixed_window = true
      else
        with_token_bucket = true
      end
    end
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4] =
      algorithm, limit, window_ms, burst, cost
    at = at + ARGS_PER_ZONE
  end
  if cost == 0 and not peeks then
    return redis.error_reply('rate_guard: cost 0 outside a plain request, in request ' .. r)
  end
  keys = keys + zones
end
if keys ~= zone_keys or at - 1 ~= arg_count then
  return redis.error_reply('rate_guard: ' .. key_count .. ' keys and ' .. arg_count ..
                           ' arguments for ' .. requests .. ' requests')
end
if requests == 0 then
  return {}
end
