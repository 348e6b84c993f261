# count=after: the check before the request only asks whether quota remains
# (a peek: nothing recorded, the headers report the quota before the
# request); the request is counted in the log phase, with `if=` and `cost=`
# evaluated then, so that $status and $upstream_http_* decide. Every block
# uses zones of its own; a block without --- config goes on with the nginx of
# the block before it (both runners keep it running), to look at what that
# block left behind.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

listen_closed_port();
listen_blackhole_port();

load_module_in_every_block();

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: brute force on a login: only 401 and 403 count; 200s pass freely and never use the quota; failures that reach the limit reject even a correct password
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_login rate=3r/m algorithm=sliding_log;
    map $status $login_failed {
        401     1;
        403     1;
        default "";
    }
--- config
    location = /login {
        rate_guard zone=t070_login count=after if=$login_failed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/check-password;
    }
    location = /check-password {
        if ($http_x_password = "") {
            return 403 "no password\n";
        }
        if ($http_x_password != "right") {
            return 401 "wrong password\n";
        }
        return 200 "welcome\n";
    }
--- request eval
[("GET /login") x 9]
--- more_headers eval
["X-User: alice\nX-Password: right",
 "X-User: alice\nX-Password: right",
 "X-User: alice\nX-Password: guess1",
 "X-User: alice\nX-Password: right",
 "X-User: alice",
 "X-User: alice\nX-Password: right",
 "X-User: alice\nX-Password: guess2",
 "X-User: alice\nX-Password: right",
 "X-User: alice\nX-Password: guess3"]
--- error_code eval
[200, 200, 401, 200, 403, 200, 401, 429, 429]
--- response_headers eval
["X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 3\nX-RateLimit-Reset: 0",
 "X-RateLimit-Remaining: 3",
 "X-RateLimit-Remaining: 3",
 "X-RateLimit-Remaining: 2",
 "X-RateLimit-Remaining: 2",
 "X-RateLimit-Remaining: 1",
 "X-RateLimit-Remaining: 1\n!Retry-After",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["", "", "", "", "", "", "", "Retry-After: (59|60)", "Retry-After: (59|60)"]
--- response_body eval
["welcome\n", "welcome\n", "wrong password\n", "welcome\n", "no password\n", "welcome\n",
 "wrong password\n", qr/429/, qr/429/]



=== TEST 2: tokens charged from an upstream header: the budget is spent by what the responses report, then 429 with Retry-After
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_api_key zone=t070_tokens rate=100 window=60s;
--- config
    location = /chat {
        rate_guard zone=t070_tokens count=after cost=$upstream_http_x_tokens_used;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/model;
    }
    location = /cached {
        rate_guard zone=t070_tokens count=after cost=$upstream_http_x_tokens_used;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/cache;
    }
    location = /model {
        add_header X-Tokens-Used 40;
        return 200 "answer\n";
    }
    location = /cache {
        return 200 "cached answer\n";
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /chat", "GET /cached", "GET /chat", "GET /chat", "GET /chat", "GET /cached", "GET /metrics"]
--- more_headers eval
[("X-Api-Key: team-a") x 6, ""]
--- error_code eval
[200, 200, 200, 200, 429, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 100\nX-RateLimit-Remaining: 100\nX-RateLimit-Reset: 0\nX-Tokens-Used: 40",
 "X-RateLimit-Remaining: 60\n!X-Tokens-Used",
 "X-RateLimit-Remaining: 60",
 "X-RateLimit-Remaining: 20",
 "X-RateLimit-Limit: 100\nX-RateLimit-Remaining: 0\n!X-Tokens-Used",
 "X-RateLimit-Limit: 100\nX-RateLimit-Remaining: 0",
 ""]
--- response_headers_like eval
["", "", "", "", "Retry-After: [1-9][0-9]*", "Retry-After: [1-9][0-9]*", ""]
--- response_body_like eval
["^answer\n\$", "^cached answer\n\$", "^answer\n\$", "^answer\n\$", "429", "429",
 "\\A(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_tokens\"\\} 3\n)(?=(?:.|\n)*rate_guard_after_units_total\\{zone=\"t070_tokens\"\\} 120\n)"]



=== TEST 3: a count=after request whose client leaves before the response (499) is still counted
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_gone rate=5r/m algorithm=sliding_log;
--- config
    location = /hang {
        rate_guard zone=t070_gone count=after;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT;
    }
    location = /t {
        rate_guard zone=t070_gone count=after;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request
GET /hang
--- more_headers
X-User: leaver
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 0.3



=== TEST 4: (the nginx of TEST 3) the log phase counted the request of the client that left
--- request eval
["GET /metrics", "GET /t"]
--- more_headers eval
["", "X-User: leaver"]
--- error_code eval
[200, 200]
--- response_headers eval
["", "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4"]
--- response_body_like eval
["rate_guard_after_counts_total\\{zone=\"t070_gone\"\\} 1\n", "GIF89a"]



=== TEST 5: count=sideways is refused
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a count=sideways;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "count=sideways", expected "count=before" or "count=after" in \S+nginx\.conf:\d+/



=== TEST 6: if= needs count=after
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a if=$arg_count;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"if=" needs "count=after" in \S+nginx\.conf:\d+/



=== TEST 7: if= with count=before is refused too
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a count=before if=$arg_count;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"if=" needs "count=after" in \S+nginx\.conf:\d+/



=== TEST 7b: if= must be a variable
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a count=after if=yes;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "if=yes", expected a variable, such as "if=\$login_failed" in \S+nginx\.conf:\d+/



=== TEST 8: a duplicate count=
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a count=after count=before;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate option "count=" in \S+nginx\.conf:\d+/



=== TEST 9: count=before and count=after zones on one request keep their own timing; the headers report the most restrictive
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_mix_before rate=10r/m algorithm=sliding_log;
    rate_guard_zone $http_x_user zone=t070_mix_after rate=2r/m algorithm=sliding_log;
--- config
    location = /both {
        rate_guard zone=t070_mix_before;
        rate_guard zone=t070_mix_after count=after;
        add_header X-Vars "$rate_guard_zone $rate_guard_limit $rate_guard_remaining" always;
        empty_gif;
    }
    location = /before-only {
        rate_guard zone=t070_mix_before;
        empty_gif;
    }
    location = /after-only {
        rate_guard zone=t070_mix_after count=after;
        empty_gif;
    }
--- request eval
["GET /both", "GET /both", "GET /both", "GET /before-only", "GET /after-only"]
--- more_headers
X-User: mixed
--- error_code eval
[200, 200, 429, 200, 429]
--- response_headers eval
["X-Vars: t070_mix_after 2 2\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 2",
 "X-Vars: t070_mix_after 2 1\nX-RateLimit-Remaining: 1",
 "X-Vars: t070_mix_after 2 0\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 10\nX-RateLimit-Remaining: 7",
 "X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["", "", "Retry-After: (59|60)", "", "Retry-After: (59|60)"]



=== TEST 10: count=before and count=after: the count=before zone is counted at the check (its remaining after the request), the other after the response
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_mix2_before rate=3r/m algorithm=sliding_log;
    rate_guard_zone $http_x_user zone=t070_mix2_after rate=10r/m algorithm=sliding_log;
--- config
    location = /both {
        rate_guard zone=t070_mix2_before;
        rate_guard zone=t070_mix2_after count=after;
        empty_gif;
    }
    location = /after-only {
        rate_guard zone=t070_mix2_after count=after;
        empty_gif;
    }
--- request eval
["GET /both", "GET /both", "GET /both", "GET /both", "GET /after-only"]
--- more_headers
X-User: mixed2
--- error_code eval
[200, 200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 2",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 1",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 10\nX-RateLimit-Remaining: 7"]



=== TEST 11: Redis down: the request passes at once (fail open), its count is lost and counted as lost
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $http_x_user zone=t070_down rate=5r/m;
--- config
    location = /t {
        rate_guard zone=t070_down count=after;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /metrics"]
--- more_headers eval
["X-User: down", "X-User: down", "X-User: down", ""]
--- timeout: 0.5
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["X-Status: ERROR\n!X-RateLimit-Limit", "X-Status: ERROR", "X-Status: ERROR", ""]
--- response_body_like eval
["GIF89a", "GIF89a", "GIF89a",
 "\\A(?=(?:.|\n)*rate_guard_requests_fail_policy_total\\{zone=\"t070_down\"\\} 3\n)(?=(?:.|\n)*rate_guard_after_counts_lost_total\\{zone=\"t070_down\"\\} 3\n)"]



=== TEST 12: Redis that accepts and never answers: every request is answered by the fail policy, every count is lost and counted as lost
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT timeout=200ms connect_timeout=200ms;
    rate_guard_zone $http_x_user zone=t070_hung rate=5r/m;
--- config
    location = /t {
        rate_guard zone=t070_hung count=after;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /metrics"]
--- more_headers eval
["X-User: hung", "X-User: hung", ""]
--- wait: 0.5
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-Status: ERROR", "X-Status: ERROR", ""]
--- response_body_like eval
["GIF89a", "GIF89a",
 "rate_guard_after_counts_lost_total\\{zone=\"t070_hung\"\\} 2\n"]



=== TEST 13: a count=after zone before Redis stops answering: one request counted
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
    rate_guard_zone $http_x_user zone=t070_paused rate=5r/m algorithm=sliding_log;
--- config
    location = /slow {
        rate_guard zone=t070_paused count=after;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT;
        proxy_read_timeout 500ms;
    }
    location = /t {
        rate_guard zone=t070_paused count=after;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request
GET /t
--- more_headers
X-User: paused
--- response_headers
X-RateLimit-Limit: 5
X-RateLimit-Remaining: 5



=== TEST 14: (the nginx of TEST 13) Redis paused while the upstream works (500 ms, then 504): the response is not held for its count (Redis answers nothing for 1.5 s; a response held for it would leave the client 1 s without a byte, over its 0.8 s timeout)
--- redis_later
0.2 CLIENT PAUSE 1500 ALL
--- request
GET /slow
--- more_headers
X-User: paused
--- timeout: 0.8
--- error_code: 504
--- response_headers
X-RateLimit-Limit: 5
X-RateLimit-Remaining: 4
--- wait: 2



=== TEST 15: (the nginx of TEST 13) the count of TEST 14 was lost, and counted as lost
--- request eval
["GET /metrics", "GET /t"]
--- more_headers eval
["", "X-User: paused"]
--- response_headers eval
["", "X-RateLimit-Remaining: 4"]
--- response_body_like eval
["\\A(?=(?:.|\n)*rate_guard_after_counts_lost_total\\{zone=\"t070_paused\"\\} 1\n)(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_paused\"\\} 2\n)", "GIF89a"]



=== TEST 16: if= decides per request: empty or "0" counts nothing, any other value counts
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_if rate=5r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t070_if count=after if=$arg_count;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t?count=0", "GET /t?count=", "GET /t?count=yes", "GET /t?count=1", "GET /t"]
--- more_headers
X-User: iffy
--- response_headers eval
["X-RateLimit-Remaining: 5", "X-RateLimit-Remaining: 5", "X-RateLimit-Remaining: 5",
 "X-RateLimit-Remaining: 5", "X-RateLimit-Remaining: 4", "X-RateLimit-Remaining: 3"]



=== TEST 17: a cost from the upstream that is no number is logged and not counted
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_api_key zone=t070_bad_cost rate=100 window=60s;
--- config
    location = /chat {
        rate_guard zone=t070_bad_cost count=after cost=$upstream_http_x_tokens_used;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/model;
    }
    location = /model {
        add_header X-Tokens-Used lots;
        return 200 "answer\n";
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request
GET /chat
--- more_headers
X-Api-Key: team-c
--- response_headers
X-RateLimit-Remaining: 100
--- response_body
answer
--- error_log
rate_guard: invalid cost "lots" (a number from 1 to 1000000): not counted while logging request



=== TEST 17b: (the nginx of TEST 17) nothing was counted; the invalid value is counted as such
--- request eval
["GET /chat", "GET /metrics"]
--- more_headers eval
["X-Api-Key: team-c", ""]
--- response_headers eval
["X-RateLimit-Remaining: 100", ""]
--- response_body_like eval
["^answer\n\$",
 "\\A(?=(?:.|\n)*rate_guard_requests_invalid_value_total\\{zone=\"t070_bad_cost\"\\} 2\n)(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_bad_cost\"\\} 0\n)"]



=== TEST 18: Redis down and rate_guard_fail closed: 503, and nothing to count
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $http_x_user zone=t070_down_closed rate=5r/m;
--- config
    location = /t {
        rate_guard zone=t070_down_closed count=after;
        rate_guard_fail closed;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /metrics"]
--- more_headers eval
["X-User: down", "X-User: down", ""]
--- error_code eval
[503, 503, 200]
--- response_body_like eval
["503", "503",
 "\\A(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_down_closed\"\\} 0\n)(?=(?:.|\n)*rate_guard_after_counts_lost_total\\{zone=\"t070_down_closed\"\\} 0\n)"]



=== TEST 19: a count=after zone is never leased, however busy its key: every count reaches Redis
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_busy rate=1000 window=1h lease=on lease_time=500ms;
--- config
    location = /t {
        rate_guard zone=t070_busy count=after;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
[("GET /t") x 40, "GET /metrics", "GET /t"]
--- more_headers eval
[("X-User: busy") x 40, "", "X-User: busy"]
--- response_headers eval
[("") x 40, "", "X-RateLimit-Remaining: 960"]
--- response_body_like eval
[("GIF89a") x 40,
 "\\A(?=(?:.|\n)*rate_guard_lease_grants_total\\{zone=\"t070_busy\"\\} 0\n)(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_busy\"\\} 40\n)",
 "GIF89a"]



=== TEST 20: on one keep-alive connection each request's count is made before the next request is checked
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_keepalive rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t070_keepalive count=after;
        empty_gif;
    }
--- pipelined_requests eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- more_headers
X-User: keepalive
--- error_code eval
[200, 200, 429, 429]
--- response_headers eval
["X-RateLimit-Remaining: 2", "X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0"]



=== TEST 21: a dry run's would-be rejection goes on but is not counted
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t070_dry rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t070_dry count=after;
        rate_guard_dry_run on;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /metrics"]
--- more_headers eval
[("X-User: dry") x 4, ""]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Status: PASSED\nX-RateLimit-Remaining: 2", "X-Status: PASSED\nX-RateLimit-Remaining: 1",
 "X-Status: REJECTED_DRY_RUN", "X-Status: REJECTED_DRY_RUN", ""]
--- response_body_like eval
[("GIF89a") x 4,
 "\\A(?=(?:.|\n)*rate_guard_after_counts_total\\{zone=\"t070_dry\"\\} 2\n)(?=(?:.|\n)*rate_guard_requests_rejected_dry_run_total\\{zone=\"t070_dry\"\\} 2\n)"]
