# Bans and overrides: rules written to Redis by rate-guard-ctl (its lines in
# --- rate_guard_ctl run just before a block's requests, see t/RateGuard.pm)
# and read by the same script call as the counts, so the next request of the
# key sees them; a key answered from the blocked-key cache or from a lease
# sees them within a second. Every block uses zones of its own; a block
# without --- config goes on with the nginx of the block before it.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

load_module_in_every_block();

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: before the ban: alice passes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_ban rate=5r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_ban;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- request
GET /t
--- more_headers
X-User: alice
--- response_headers
X-RateLimit-Limit: 5
X-RateLimit-Remaining: 4



=== TEST 2: a ban rejects the key at once, with Retry-After its remaining time; other keys pass
--- rate_guard_ctl
ban t080_ban alice 1h
--- request eval
["GET /t", "GET /t", "GET /t"]
--- more_headers eval
["X-User: alice", "X-User: bob", "X-User: alice"]
--- error_code eval
[429, 200, 429]
--- response_headers eval
["X-Status: REJECTED\nX-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0",
 "X-Status: PASSED\nX-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["Retry-After: (3599|3600)\nX-RateLimit-Reset: (3599|3600)", "", "Retry-After: (3599|3600)"]



=== TEST 3: unban lifts it (within a second: the blocked-key cache holds a rejection at most 1 s); the rejections under the ban used no quota
--- rate_guard_ctl
unban t080_ban alice
sleep 1.1
--- request
GET /t
--- more_headers
X-User: alice
--- error_code: 200
--- response_headers
X-Status: PASSED
X-RateLimit-Remaining: 3



=== TEST 4: a short ban ends by itself: Retry-After counts it down, then the key passes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_short rate=5r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_short;
        empty_gif;
    }
--- rate_guard_ctl
ban t080_short carl 3s
--- request eval
["GET /t", "GET /t"]
--- more_headers
X-User: carl
--- error_code eval
[429, 429]
--- response_headers_like eval
["Retry-After: [23]", "Retry-After: [23]"]



=== TEST 5: (the nginx of TEST 4) three seconds later the ban is over
--- rate_guard_ctl
sleep 3.1
--- request
GET /t
--- more_headers
X-User: carl
--- error_code: 200
--- response_headers
X-RateLimit-Remaining: 4



=== TEST 6: an override raises a key's limit: carol, over the zone's 2, gets 5 (within a second: her rejection was cached); dave keeps 2
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_over rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_over;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t"]
--- more_headers
X-User: carol
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 2"]



=== TEST 7: (the nginx of TEST 6) limit 5r/m for carol
--- rate_guard_ctl
limit t080_over carol 5r/m
sleep 1.1
--- request eval
[("GET /t") x 5]
--- more_headers eval
[("X-User: carol") x 4, "X-User: dave"]
--- error_code eval
[200, 200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 2",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 1",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1"]



=== TEST 8: (the nginx of TEST 6) an override lowers a key's limit: erin gets 1 where the zone gives 2; carol, lowered to 4, stays rejected
--- rate_guard_ctl
limit t080_over erin 1r/m
limit t080_over carol 4r/m
sleep 1.1
--- request eval
["GET /t", "GET /t", "GET /t"]
--- more_headers eval
["X-User: erin", "X-User: erin", "X-User: carol"]
--- error_code eval
[200, 429, 429]
--- response_headers eval
["X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 4\nX-RateLimit-Remaining: 0"]



=== TEST 9: (the nginx of TEST 6) unlimit: carol is back to the zone's limit
--- rate_guard_ctl
unlimit t080_over carol
sleep 1.1
--- request
GET /t
--- more_headers
X-User: carol
--- error_code: 429
--- response_headers
X-RateLimit-Limit: 2
X-RateLimit-Remaining: 0



=== TEST 10: rate=unlimited: every request passes and none is counted; the headers show the zone's limit, all of it remaining
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_unl rate=2r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_unl;
        empty_gif;
    }
--- rate_guard_ctl
limit t080_unl frank unlimited
--- request eval
[("GET /t") x 4]
--- more_headers
X-User: frank
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
[("X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 2\nX-RateLimit-Reset: 0") x 4]



=== TEST 11: (the nginx of TEST 10) after unlimit the key starts from nothing counted
--- rate_guard_ctl
unlimit t080_unl frank
--- request eval
["GET /t", "GET /t", "GET /t"]
--- more_headers
X-User: frank
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 2"]



=== TEST 12: a key in the blocked-key cache: gina, over her limit, answered locally
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_cached rate=1r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_cached;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /metrics"]
--- more_headers eval
["X-User: gina", "X-User: gina", "X-User: gina", ""]
--- error_code eval
[200, 429, 429, 200]
--- response_headers_like eval
["", "Retry-After: (59|60)", "Retry-After: (59|60)", ""]
--- response_body_like eval
["GIF89a", "429", "429", "rate_guard_requests_block_cache_hits_total\\{zone=\"t080_cached\"\\} 1\n"]



=== TEST 13: (the nginx of TEST 12) a ban of the cached key is seen within a second: Retry-After becomes the ban's
--- rate_guard_ctl
ban t080_cached gina 1h
sleep 1.1
--- request
GET /t
--- more_headers
X-User: gina
--- error_code: 429
--- response_headers_like
Retry-After: (3599|3600)



=== TEST 14: a leased key: hank, busy for over a second (lease_time=2s), is admitted from leases
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_leased rate=1000 window=1h lease_time=2s;
--- config
    location = /t {
        rate_guard zone=t080_leased;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
[("GET /t") x 80]
--- more_headers
X-User: hank
--- error_code eval
[(200) x 80]



=== TEST 15: (the nginx of TEST 14) leases were granted and used
--- request
GET /metrics
--- response_body_like: rate_guard_lease_requests_total\{zone="t080_leased"\} [1-9][0-9]*\n



=== TEST 16: (the nginx of TEST 14) a ban of the leased key is seen within a second (a lease lives at most 1 s, whatever lease_time says)
--- rate_guard_ctl
ban t080_leased hank 1h
sleep 1.1
--- request
GET /t
--- more_headers
X-User: hank
--- error_code: 429
--- response_headers
X-RateLimit-Limit: 1000
X-RateLimit-Remaining: 0
--- response_headers_like
Retry-After: (3599|3600)



=== TEST 17: the metrics: requests rejected by a ban, and decided under an override (a rate or unlimited)
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_block_cache off;
    rate_guard_zone $http_x_user zone=t080_metrics rate=5r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_metrics;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- rate_guard_ctl
ban t080_metrics ivan 1h
limit t080_metrics judy 10r/m
limit t080_metrics leo unlimited
--- request eval
[("GET /t") x 7, "GET /metrics"]
--- more_headers eval
["X-User: ivan", "X-User: ivan", "X-User: judy", "X-User: judy", "X-User: judy",
 "X-User: leo", "X-User: kim", ""]
--- error_code eval
[429, 429, 200, 200, 200, 200, 200, 200]
--- response_body_like eval
["429", "429", "GIF89a", "GIF89a", "GIF89a", "GIF89a", "GIF89a",
 "\\A(?=(?:.|\n)*rate_guard_banned_total\\{zone=\"t080_metrics\"\\} 2\n)(?=(?:.|\n)*rate_guard_overridden_total\\{zone=\"t080_metrics\"\\} 4\n)(?=(?:.|\n)*rate_guard_requests_rejected_total\\{zone=\"t080_metrics\"\\} 2\n)(?=(?:.|\n)*rate_guard_requests_passed_total\\{zone=\"t080_metrics\"\\} 5\n)"]



=== TEST 18: rules apply to count=after zones: a ban rejects the check before the request; an override is the limit of the check and of the count
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_after rate=3r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t080_after count=after;
        empty_gif;
    }
--- rate_guard_ctl
ban t080_after mia 1h
limit t080_after noah 1r/m
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- more_headers eval
["X-User: mia", "X-User: noah", "X-User: noah", "X-User: pia"]
--- error_code eval
[429, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 1",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 3"]
--- response_headers_like eval
["Retry-After: (3599|3600)", "", "Retry-After: (59|60)", ""]



=== TEST 19: a ban in one zone of a request rejects it and records nothing in the other zone
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_two_a rate=5r/m algorithm=sliding_log;
    rate_guard_zone $http_x_user zone=t080_two_b rate=5r/m algorithm=sliding_log;
--- config
    location = /both {
        rate_guard zone=t080_two_a;
        rate_guard zone=t080_two_b;
        add_header X-Zone $rate_guard_zone always;
        empty_gif;
    }
    location = /a {
        rate_guard zone=t080_two_a;
        empty_gif;
    }
--- rate_guard_ctl
ban t080_two_b olga 1h
--- request eval
["GET /both", "GET /both", "GET /a"]
--- more_headers
X-User: olga
--- error_code eval
[429, 429, 200]
--- response_headers eval
["X-Zone: t080_two_b\nX-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0", "X-Zone: t080_two_b", "X-RateLimit-Remaining: 4"]
--- response_headers_like eval
["Retry-After: (3599|3600)", "Retry-After: (3599|3600)", ""]



=== TEST 20: an override of a token_bucket key is its burst too
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_user zone=t080_bucket rate=2r/m algorithm=token_bucket;
--- config
    location = /t {
        rate_guard zone=t080_bucket;
        empty_gif;
    }
--- rate_guard_ctl
limit t080_bucket pat 5r/m
--- request eval
[("GET /t") x 6]
--- more_headers
X-User: pat
--- error_code eval
[200, 200, 200, 200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4", "X-RateLimit-Remaining: 3", "X-RateLimit-Remaining: 2",
 "X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 0"]
