-- wrk script of the benchmark: sets the X-Client header (the client key every
-- contender limits on). Every request is built once, in init(), so wrk spends
-- the same (small) effort per request in every scenario.
--
--   wrk ... -s keys.lua URL -- one          one constant key: client-1
--   wrk ... -s keys.lua URL -- many 10000   keys client-1 .. client-10000, in turn
--   wrk ... -s keys.lua URL -- mix 1000     every other request from the flooding
--                                           key "flood", the others from
--                                           good-1 .. good-1000, in turn

local requests = {}
local i = 0

local function build(key)
    return wrk.format(nil, nil, { ["Host"] = wrk.host, ["X-Client"] = key })
end

function init(args)
    local mode = args[1] or "one"
    local count = tonumber(args[2] or "1")
    if mode == "one" then
        requests[1] = build("client-1")
    elseif mode == "many" then
        for k = 1, count do
            requests[k] = build("client-" .. k)
        end
    elseif mode == "mix" then
        for k = 1, count do
            requests[2 * k - 1] = build("flood")
            requests[2 * k] = build("good-" .. k)
        end
    else
        error("keys.lua: unknown mode " .. mode)
    end
    -- each thread starts at its own place in the cycle
    i = math.random(#requests) - 1
end

function request()
    i = i % #requests + 1
    return requests[i]
end
