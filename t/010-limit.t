# Distributed limiting end to end: the real nginx with the module and a real
# redis-server (started by t/run). Every block uses a zone of its own, so the
# counts in Redis of one block never reach another.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

listen_blackhole_port();
listen_closed_port();

load_module_in_every_block();

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: 5 requests per minute: 7 requests, 5 pass, 2 get 429 with Retry-After
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=t010_1 rate=5r/m;
--- config
    location = /t {
        rate_guard zone=t010_1;
        empty_gif;
    }
--- request eval
[("GET /t") x 7]
--- error_code eval
[200, 200, 200, 200, 200, 429, 429]
--- response_headers eval
["X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4\nX-RateLimit-Reset: 0\n!Retry-After",
 "X-RateLimit-Remaining: 3", "X-RateLimit-Remaining: 2", "X-RateLimit-Remaining: 1",
 "X-RateLimit-Remaining: 0\n!Retry-After",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0", "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["", "", "", "", "X-RateLimit-Reset: [1-9][0-9]*", "Retry-After: [1-9][0-9]*", "Retry-After: [1-9][0-9]*"]



=== TEST 1b: the same client, still over the limit: one line per rejection names zone and key
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=t010_1 rate=5r/m;
--- config
    location = /t {
        rate_guard zone=t010_1;
        empty_gif;
    }
--- request
GET /t
--- error_code: 429
--- error_log eval
qr/\[error\] .*limiting requests by zone "t010_1", key "\\x7F\\x00\\x00\\x01", client: 127\.0\.0\.1/



=== TEST 2: headers on passed responses from a static file and from proxy_pass
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_2 rate=100r/m;
--- config
    location = /static.txt {
        rate_guard zone=t010_2;
    }
    location = /proxied {
        rate_guard zone=t010_2;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/backend;
    }
    location = /backend {
        return 200 "from backend\n";
    }
--- user_files
>>> static.txt
static content
--- request eval
["GET /static.txt", "GET /proxied"]
--- error_code eval
[200, 200]
--- response_body eval
["static content\n", "from backend\n"]
--- response_headers eval
["X-RateLimit-Limit: 100\nX-RateLimit-Remaining: 99", "X-RateLimit-Limit: 100\nX-RateLimit-Remaining: 98"]



=== TEST 3: error_page 429 gives the rejection a body of our own, headers kept
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_3 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_3;
        error_page 429 = @limited;
        empty_gif;
    }
    location @limited {
        default_type text/plain;
        return 429 "slow down\n";
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]
--- response_body eval
[qr/GIF89a/, "slow down\n"]
--- response_headers eval
["X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["", "Retry-After: [1-9][0-9]*"]



=== TEST 4: rate_guard_headers off sends none, rate_guard_status changes the code
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_4 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_4;
        rate_guard_headers off;
        rate_guard_status 503;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 503]
--- response_headers eval
["!X-RateLimit-Limit\n!X-RateLimit-Remaining", "!X-RateLimit-Limit\n!Retry-After"]



=== TEST 5: dry run decides and logs, never rejects; the variables tell
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_5 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_5;
        rate_guard_dry_run on;
        rate_guard_log_level warn;
        add_header X-Status $rate_guard_status always;
        add_header X-Zone $rate_guard_zone always;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Status: PASSED\nX-Zone: t010_5", "X-Status: REJECTED_DRY_RUN\nX-Zone: t010_5\n!Retry-After"]



=== TEST 5b: the dry-run rejection is logged at rate_guard_log_level
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_5 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_5;
        rate_guard_dry_run on;
        rate_guard_log_level warn;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- error_log eval
qr/\[warn\] .*limiting requests, dry run, by zone "t010_5", key "127\.0\.0\.1"/
--- no_error_log
[error]



=== TEST 6: the variables carry limit, remaining and reset
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_6 rate=3r/m algorithm=fixed_window;
--- config
    location = /t {
        rate_guard zone=t010_6;
        add_header X-Vars "$rate_guard_status $rate_guard_zone $rate_guard_limit $rate_guard_remaining" always;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200, 429]
--- response_headers eval
["X-Vars: PASSED t010_6 3 2", "X-Vars: PASSED t010_6 3 1", "X-Vars: PASSED t010_6 3 0", "X-Vars: REJECTED t010_6 3 0"]



=== TEST 7: an empty key is not limited
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_api_key zone=t010_7 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_7;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["!X-RateLimit-Limit", "!X-RateLimit-Limit", "!X-RateLimit-Limit"]



=== TEST 8: the key comes from a header; different keys have separate limits
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_api_key zone=t010_8 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_8;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- more_headers eval
["X-Api-Key: alice", "X-Api-Key: alice", "X-Api-Key: bob"]
--- error_code eval
[200, 429, 200]



=== TEST 9: inheritance as limit_req: a level with its own lines replaces its parent's; off
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_9a rate=1r/m;
    rate_guard_zone $remote_addr zone=t010_9b rate=100r/m;
--- config
    rate_guard zone=t010_9a;
    location = /inherits {
        empty_gif;
    }
    location = /own {
        rate_guard zone=t010_9b;
        empty_gif;
    }
    location = /off {
        rate_guard off;
        empty_gif;
    }
--- request eval
["GET /inherits", "GET /inherits", "GET /own", "GET /own", "GET /off", "GET /off"]
--- error_code eval
[200, 429, 200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit: 1", "X-RateLimit-Limit: 1", "X-RateLimit-Limit: 100", "X-RateLimit-Limit: 100", "!X-RateLimit-Limit", "!X-RateLimit-Limit"]



=== TEST 10: an internal redirect to another limited location is not checked again
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_10 rate=10r/m algorithm=sliding_log;
--- config
    location = /start {
        rate_guard zone=t010_10;
        try_files /nothing-here @next;
    }
    location @next {
        rate_guard zone=t010_10;
        rewrite ^ /final last;
    }
    location = /final {
        rate_guard zone=t010_10;
        empty_gif;
    }
--- request eval
["GET /start", "GET /start"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-RateLimit-Remaining: 9", "X-RateLimit-Remaining: 8"]



=== TEST 11: several zones: the most restrictive reports; a rejection counts in none
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_11_wide rate=10r/m algorithm=sliding_log;
    rate_guard_zone $remote_addr zone=t010_11_tight rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t010_11_wide;
        rate_guard zone=t010_11_tight;
        add_header X-Zone $rate_guard_zone always;
        empty_gif;
    }
    location = /wide {
        rate_guard zone=t010_11_wide;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /wide"]
--- error_code eval
[200, 200, 429, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1\nX-Zone: t010_11_tight",
 "X-RateLimit-Remaining: 0", "X-Zone: t010_11_tight", "X-Zone: t010_11_tight",
 "X-RateLimit-Limit: 10\nX-RateLimit-Remaining: 7"]



=== TEST 12: cost=3 counts a request three times
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_12 rate=5r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t010_12 cost=3;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 2", "X-RateLimit-Remaining: 2"]



=== TEST 13: Redis down, fail open: requests pass with ERROR, the error is logged
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $remote_addr zone=t010_13 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_13;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-Status: ERROR\n!X-RateLimit-Limit", "X-Status: ERROR", "X-Status: ERROR"]



=== TEST 13b: Redis down: the connection error is logged
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $remote_addr zone=t010_13 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_13;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- error_log eval
qr/\[error\] .*rate_guard: connection to Redis 127\.0\.0\.1:\d+ lost: Connection refused/



=== TEST 14: Redis down, fail closed: 503
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $remote_addr zone=t010_14 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_14;
        rate_guard_fail closed;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[503, 503]



=== TEST 15: a Redis that accepts but never answers is a timeout: the fail policy decides
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT timeout=100ms connect_timeout=100ms;
    rate_guard_zone $remote_addr zone=t010_15 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_15;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- response_headers
X-Status: ERROR
--- error_log eval
qr/\[error\] .*rate_guard: (Redis 127\.0\.0\.1:\d+ did not answer within 100ms|no connection to Redis 127\.0\.0\.1:\d+ ready within 100ms)/
--- timeout: 3



=== TEST 16: a unix socket address
--- http_config
    rate_guard_redis unix:$TEST_NGINX_REDIS_SOCKET;
    rate_guard_zone $remote_addr zone=t010_16 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t010_16;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]



=== TEST 17: the variables are usable in log_format
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_17 rate=5r/m algorithm=sliding_log;
    log_format rate_guard_fields 'rg-access status=$rate_guard_status zone=$rate_guard_zone limit=$rate_guard_limit remaining=$rate_guard_remaining reset=$rate_guard_reset';
--- config
    location = /t {
        rate_guard zone=t010_17;
        # Into the error log, where the suite can read it.
        access_log logs/error.log rate_guard_fields;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- error_log
rg-access status=PASSED zone=t010_17 limit=5 remaining=4 reset=0



=== TEST 18: draft headers: RateLimit-Policy and RateLimit
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t010_18 rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t010_18;
        rate_guard_headers draft;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- error_code eval
[200, 200, 429]
--- response_headers eval
["RateLimit-Policy: \"t010_18\";q=2;w=60\nRateLimit: \"t010_18\";r=1;t=0\n!X-RateLimit-Limit",
 "RateLimit-Policy: \"t010_18\";q=2;w=60",
 "RateLimit-Policy: \"t010_18\";q=2;w=60\n!X-RateLimit-Remaining"]
--- response_headers_like eval
["", "RateLimit: \"t010_18\";r=0;t=[1-9][0-9]*", "RateLimit: \"t010_18\";r=0;t=[1-9][0-9]*\nRetry-After: [1-9][0-9]*"]
