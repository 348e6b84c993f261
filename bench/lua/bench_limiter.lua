-- The OpenResty-style distributed rate limiter the benchmark compares
-- rate_guard with, written the way people write it today: access_by_lua,
-- lua-resty-redis with a keepalive pool (one Redis connection per request in
-- flight, no pipelining), and EVALSHA of a sliding-window script, loaded with
-- SCRIPT LOAD on the first NOSCRIPT.
--
-- The script is the two-counter sliding window (the previous window's count
-- weighted by its overlap with the sliding window), the same algorithm as
-- rate_guard's default, so the comparison is about the machinery in nginx,
-- not about the work Redis does. Time comes from Redis (TIME), as in
-- rate_guard. Redis errors fail open, as rate_guard does by default.
--
-- Usage (see conf/openresty.conf.in):
--   init_by_lua_block   { require("bench_limiter").init("127.0.0.1", 6379) }
--   access_by_lua_block { require("bench_limiter").check("zone", limit, window_ms) }

-- Debian's lua-nginx-redis installs lua-resty-redis as "nginx.redis";
-- OpenResty and LuaRocks install it as "resty.redis".
local ok, redis = pcall(require, "resty.redis")
if not ok then
    redis = require "nginx.redis"
end

local ngx = ngx
local var = ngx.var
local exit = ngx.exit
local log = ngx.log
local ERR = ngx.ERR
local find = string.find

local _M = {}

local SCRIPT = [[
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local index = math.floor(now / window)
local current_key = key .. ':' .. index
local counts = redis.call('MGET', key .. ':' .. (index - 1), current_key)
local previous = tonumber(counts[1]) or 0
local current = tonumber(counts[2]) or 0
local elapsed = now - index * window
if previous * (window - elapsed) / window + current + 1 > limit then
  return 0
end
redis.call('INCR', current_key)
redis.call('PEXPIRE', current_key, window * 2)
return 1
]]

local host, port
local sha

local function hex(bin)
    return (bin:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function _M.init(redis_host, redis_port)
    host, port = redis_host, redis_port
    sha = hex(ngx.sha1_bin(SCRIPT))
end

-- Fail open: log and let the request through.
local function fail(red, what, err)
    log(ERR, "bench_limiter: ", what, ": ", err)
    if red then
        red:close()
    end
end

function _M.check(zone, limit, window_ms)
    local key = var.http_x_client
    if not key or key == "" then
        return
    end

    local red = redis:new()
    -- set_timeout: the lua-resty-redis of Debian (0.27) predates set_timeouts
    red:set_timeout(1000)
    local ok, err = red:connect(host, port)
    if not ok then
        return fail(nil, "connect", err)
    end

    local rkey = "orl:" .. zone .. ":" .. key
    local res
    res, err = red:evalsha(sha, 1, rkey, limit, window_ms)
    if not res and err and find(err, "NOSCRIPT", 1, true) then
        local loaded
        loaded, err = red:script("load", SCRIPT)
        if not loaded then
            return fail(red, "script load", err)
        end
        res, err = red:evalsha(sha, 1, rkey, limit, window_ms)
    end
    if not res then
        return fail(red, "evalsha", err)
    end

    -- back into the pool: at most 100 idle connections, kept 60 s
    red:set_keepalive(60000, 100)

    if res == 0 then
        return exit(429)
    end
end

return _M
