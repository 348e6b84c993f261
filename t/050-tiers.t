# Per-tier limits: rate= and cost= taken from variables (a map on a header),
# evaluated per request; a malformed value is logged and left to the fail policy.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

load_module_in_every_block(sub {
    my $block = shift;
    if (!defined $block->http_config) {
        $block->set_value("http_config", <<"_EOC_");
    rate_guard_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    map \$http_x_plan \$plan_rate {
        default 2r/m;
        pro     4r/m;
        broken  lots;
    }
    map \$http_x_weight \$weight {
        default 1;
        heavy   3;
        huge    5;
        free    0;
    }
    rate_guard_zone \$http_x_api_key zone=t050 rate=\$plan_rate algorithm=sliding_log;
_EOC_
    }
    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    location = /t {
        rate_guard zone=t050 cost=$weight;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
_EOC_
    }
});

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: the default plan gets 2 per minute
--- request eval
[("GET /t") x 3]
--- more_headers
X-Api-Key: free-client
--- error_code eval
[200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 2"]



=== TEST 2: the pro plan gets 4 per minute
--- request eval
[("GET /t") x 5]
--- more_headers
X-Api-Key: pro-client
X-Plan: pro
--- error_code eval
[200, 200, 200, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 4\nX-RateLimit-Remaining: 3", "X-RateLimit-Remaining: 2", "X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 4"]



=== TEST 3: a heavy request costs 3
--- request eval
["GET /t", "GET /t"]
--- more_headers
X-Api-Key: heavy-client
X-Plan: pro
X-Weight: heavy
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 1"]



=== TEST 4: a malformed rate is logged and the fail policy decides
--- request
GET /t
--- more_headers
X-Api-Key: broken-client
X-Plan: broken
--- error_code: 200
--- response_headers
X-Status: ERROR
!X-RateLimit-Limit
--- error_log
rate_guard: invalid rate "lots" from "$plan_rate"



=== TEST 5: a malformed cost, fail closed: 503
--- config
    location = /t {
        rate_guard zone=t050 cost=$weight;
        rate_guard_fail closed;
        empty_gif;
    }
--- request
GET /t
--- more_headers
X-Api-Key: free-weight-client
X-Weight: free
--- error_code: 503
--- error_log
rate_guard: invalid cost "0" (a number from 1 to 1000000)



=== TEST 6: a cost from a variable above the request's limit is logged and left to the fail policy (it could never pass)
--- request
GET /t
--- more_headers
X-Api-Key: huge-weight-client
X-Weight: huge
--- error_code: 200
--- response_headers
X-Status: ERROR
!X-RateLimit-Limit
!Retry-After
--- error_log
rate_guard: cost 5 is larger than the limit 2 of zone "t050": the request can never pass



=== TEST 7: a static cost above a variable rate's limit, fail closed: 503
--- config
    location = /t {
        rate_guard zone=t050 cost=3;
        rate_guard_fail closed;
        empty_gif;
    }
--- request
GET /t
--- more_headers
X-Api-Key: static-cost-client
--- error_code: 503
--- error_log
rate_guard: cost 3 is larger than the limit 2 of zone "t050": the request can never pass



=== TEST 8: invalid per-request values have their own counter, apart from Redis failures
--- config
    location = /t {
        rate_guard zone=t050 cost=$weight;
        empty_gif;
    }
    location = /metrics {
        rate_guard off;
        rate_guard_metrics;
    }
--- request eval
["GET /t", "GET /metrics"]
--- more_headers
X-Api-Key: counted-invalid-client
X-Weight: huge
--- error_code eval
[200, 200]
--- response_body_like eval
["", qr/rate_guard_requests_fail_policy_total\{zone="t050"\} 0\n(.|\n)*rate_guard_requests_invalid_value_total\{zone="t050"\} 1\n/]
