# The blocked-key cache (rejections answered locally until the key may pass)
# and the Prometheus counters, compared with the requests each block sends.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

listen_closed_port();

load_module_in_every_block();

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: after a rejection the key is answered from the cache, with the same headers
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t020_1 rate=1r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t020_1;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /metrics"]
--- error_code eval
[200, 429, 429, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0",
 "Content-Type: text/plain; version=0.0.4"]
--- response_headers_like eval
["", "Retry-After: (59|60)", "Retry-After: (59|60)", "Retry-After: (59|60)", ""]
--- response_body_like eval
[qr/GIF89a/, qr/429/, qr/429/, qr/429/,
 qr/rate_guard_requests_passed_total\{zone="t020_1"\} 1\n(.|\n)*rate_guard_requests_rejected_total\{zone="t020_1"\} 3\n(.|\n)*rate_guard_requests_block_cache_hits_total\{zone="t020_1"\} 2\n(.|\n)*rate_guard_redis_round_trips_total 2\n/]



=== TEST 2: rate_guard_block_cache off: every rejection asks Redis
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_block_cache off;
    rate_guard_zone $remote_addr zone=t020_2 rate=1r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t020_2;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t", "GET /metrics"]
--- error_code eval
[200, 429, 429, 429, 200]
--- response_body_like eval
[qr/GIF89a/, qr/429/, qr/429/, qr/429/,
 qr/rate_guard_requests_rejected_total\{zone="t020_2"\} 3\n(.|\n)*rate_guard_requests_block_cache_hits_total\{zone="t020_2"\} 0\n(.|\n)*rate_guard_redis_round_trips_total 4\n/]



=== TEST 3: a cheaper request is not answered from a costlier one's rejection
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t020_3 rate=3r/m algorithm=sliding_log;
--- config
    location = /costly {
        rate_guard zone=t020_3 cost=3;
        empty_gif;
    }
    location = /cheap {
        rate_guard zone=t020_3;
        empty_gif;
    }
--- request eval
["GET /cheap", "GET /costly", "GET /cheap", "GET /cheap", "GET /cheap"]
--- error_code eval
[200, 429, 200, 200, 429]



=== TEST 4: counters per zone: passed, rejected in dry run, histogram of checks
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t020_4a rate=1r/m;
    rate_guard_zone $remote_addr zone=t020_4b rate=100r/m;
--- config
    location = /t {
        rate_guard zone=t020_4a;
        rate_guard zone=t020_4b;
        rate_guard_dry_run on;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /metrics"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/GIF89a/,
 qr/rate_guard_requests_passed_total\{zone="t020_4a"\} 1\nrate_guard_requests_passed_total\{zone="t020_4b"\} 1\n(.|\n)*rate_guard_requests_rejected_dry_run_total\{zone="t020_4a"\} 2\nrate_guard_requests_rejected_dry_run_total\{zone="t020_4b"\} 0\n(.|\n)*rate_guard_redis_check_duration_seconds_bucket\{le="\+Inf"\} 2\n/]



=== TEST 5: counters of the fail policy
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_CLOSED_PORT;
    rate_guard_zone $remote_addr zone=t020_5 rate=1r/m;
--- config
    location = /t {
        rate_guard zone=t020_5;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /t", "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/,
 qr/rate_guard_requests_fail_policy_total\{zone="t020_5"\} 2\n(.|\n)*rate_guard_redis_round_trips_total 0\n/]



=== TEST 6: a block cache too small
--- http_config
    rate_guard_block_cache 1k;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*block cache "1k" is too small, at least 32k in \S+nginx\.conf:\d+/



=== TEST 7: a block cache size that is not a size
--- http_config
    rate_guard_block_cache lots;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid size "lots" in \S+nginx\.conf:\d+/
