# rate_guard beside nginx's own limiters and error_page: it runs after
# limit_req and limit_conn in the PREACCESS phase, so a request they reject
# uses no fleet quota and carries no rate_guard headers; Retry-After goes only
# with a rejection status.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

load_module_in_every_block(sub {
    my $block = shift;
    if (!defined $block->http_config) {
        $block->set_value("http_config", <<"_EOC_");
    rate_guard_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT} timeout=1s;
    rate_guard_zone \$http_x_key zone=t060 rate=10r/m algorithm=sliding_log;
    rate_guard_zone \$http_x_key zone=t060_small rate=1r/m algorithm=sliding_log;
    limit_req_zone \$http_x_key zone=t060_local:1m rate=1r/m;
_EOC_
    }
});

plan 'no_plan';
run_tests();

__DATA__

=== TEST 1: limit_req rejects before rate_guard counts: its 503s use no fleet quota and carry no rate_guard headers
--- config
    location = /t {
        limit_req zone=t060_local nodelay;
        rate_guard zone=t060;
        empty_gif;
    }
    location = /probe {
        rate_guard zone=t060;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /probe"]
--- more_headers
X-Key: beside-limit-req
--- error_code eval
[200, 503, 503, 200]
--- response_headers eval
["X-RateLimit-Remaining: 9", "!X-RateLimit-Limit", "!X-RateLimit-Limit", "X-RateLimit-Remaining: 8"]



=== TEST 2: the same with limit_req at server level and rate_guard in the location
--- config
    limit_req zone=t060_local nodelay;
    location = /t {
        rate_guard zone=t060;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers
X-Key: beside-server-limit-req
--- error_code eval
[200, 503]
--- response_headers eval
["X-RateLimit-Remaining: 9", "!X-RateLimit-Remaining"]



=== TEST 3: error_page 429 = /page answers 200: the rate-limit headers stay, Retry-After does not
--- config
    location = /t {
        rate_guard zone=t060_small;
        error_page 429 = /busy;
        empty_gif;
    }
    location = /busy {
        internal;
        return 200 "busy\n";
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers
X-Key: error-page-to-200
--- error_code eval
[200, 200]
--- response_headers eval
["X-RateLimit-Remaining: 0", "X-RateLimit-Limit: 1\n!Retry-After"]
--- response_body_like eval
["^GIF", "^busy\n\$"]



=== TEST 4: error_page 429 with a page of its own keeps the 429 and its Retry-After
--- config
    location = /t {
        rate_guard zone=t060_small;
        error_page 429 /too-many.html;
        empty_gif;
    }
    location = /too-many.html {
        internal;
        return 429 "slow down\n";
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers
X-Key: error-page-keeps-429
--- error_code eval
[200, 429]
--- response_headers_like eval
["X-RateLimit-Remaining: 0", "Retry-After: [1-9][0-9]*"]
