# Two workers under a master: the counters are summed over all workers
# (shared memory) and the blocked-key cache is shared by them.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();
master_on();
workers(2);

load_module_in_every_block();

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: counts over two workers add up to the requests sent
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t021_1 rate=4r/m algorithm=fixed_window;
--- config
    location = /t {
        rate_guard zone=t021_1;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
[("GET /t") x 10, "GET /metrics"]
--- error_code eval
[200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 200]
--- response_body_like eval
[(qr/GIF89a/) x 4, (qr/429/) x 6,
 qr/rate_guard_requests_passed_total\{zone="t021_1"\} 4\n(.|\n)*rate_guard_requests_rejected_total\{zone="t021_1"\} 6\n/]
