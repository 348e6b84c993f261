# Configuration edges: the smallest and largest limits and windows, many
# zones in one location (one Redis round trip for all), many locations and
# zones, `rate_guard` inside `if` (refused, like limit_req), subrequests (SSI,
# mirror, auth_request: the client's request is checked, not each subrequest),
# internal redirects (error_page, try_files, named locations, rewrite, index:
# checked once) and inheritance from http to server to location. Every block
# uses zones of its own. The /metrics counters and X-RateLimit-Remaining prove
# how many checks were made.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
no_shuffle();

load_module_in_every_block();

plan 'no_plan';
run_tests();

# ---- Redis, read after the blocks: the TTLs of the extreme windows

my $cli = "$ENV{TEST_NGINX_REDIS_CLI} -h 127.0.0.1 -p $ENV{TEST_NGINX_REDIS_PORT}";
my $year_ms = 366 * 24 * 3600 * 1000;
chomp(my $pttl_year = `$cli PTTL rate_guard:t040_year:127.0.0.1`);
Test::More::ok($pttl_year > $year_ms - 600_000 && $pttl_year <= $year_ms,
               "a 366d sliding_log key expires in about 366d ($pttl_year ms)");
chomp(my $pttl_day = `$cli PTTL rate_guard:t040_day:127.0.0.1`);
Test::More::ok($pttl_day > 86_400_000 - 600_000 && $pttl_day <= 86_400_000,
               "a 1r/d sliding_log key expires in about a day ($pttl_day ms)");
chomp(my $left_ms = `$cli --raw EVAL "return #redis.call('KEYS', 'rate_guard:t040_ms*')" 0`);
Test::More::is($left_ms, 0, "the keys of 1ms windows are gone already");

__DATA__

=== TEST 1: limit 1: one passes, the next is rejected for about the window
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_one rate=1r/m algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t040_one;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 429]
--- response_headers eval
["X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0", "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0"]
--- response_headers_like eval
["X-RateLimit-Reset: (59|60)", "Retry-After: (59|60)"]



=== TEST 2: limit 1000000000 (the largest), with the largest cost, in every algorithm
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_max_sw rate=1000000000 window=366d;
    rate_guard_zone $remote_addr zone=t040_max_fw rate=1000000000 window=366d algorithm=fixed_window;
    rate_guard_zone $remote_addr zone=t040_max_tb rate=1000000000 window=1ms algorithm=token_bucket burst=1000000000;
--- config
    location = /sw {
        rate_guard zone=t040_max_sw;
        empty_gif;
    }
    location = /sw_costly {
        rate_guard zone=t040_max_sw cost=1000000;
        empty_gif;
    }
    location = /fw {
        rate_guard zone=t040_max_fw cost=1000000;
        empty_gif;
    }
    location = /tb {
        rate_guard zone=t040_max_tb cost=1000000;
        empty_gif;
    }
--- request eval
["GET /sw", "GET /sw_costly", "GET /fw", "GET /fw", "GET /tb"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 999999999\nX-RateLimit-Reset: 0",
 "X-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 998999999",
 "X-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 999000000",
 "X-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 998000000",
 "X-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 999000000"]



=== TEST 3: a limit past 1000000000 is refused
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_over rate=1000000001r/s;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*limit must be between 1 and 1000000000 in "rate=1000000001r\/s" in \S+nginx\.conf:\d+/



=== TEST 4: a cost past 1000000 is refused
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_cost rate=5r/s;
--- config
    location = /t {
        rate_guard zone=t040_cost cost=1000001;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*cost must be between 1 and 1000000 in "cost=1000001" in \S+nginx\.conf:\d+/



=== TEST 5: a 1ms window (the smallest): a request per millisecond, each a window of its own
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_ms rate=1 window=1ms;
    rate_guard_zone $remote_addr zone=t040_ms_log rate=1 window=1ms algorithm=sliding_log;
    rate_guard_zone $remote_addr zone=t040_ms_fw rate=1 window=1ms algorithm=fixed_window;
--- config
    location = /sw {
        rate_guard zone=t040_ms;
        empty_gif;
    }
    location = /log {
        rate_guard zone=t040_ms_log;
        empty_gif;
    }
    location = /fw {
        rate_guard zone=t040_ms_fw;
        empty_gif;
    }
--- request eval
["GET /sw", "GET /sw", "GET /sw", "GET /log", "GET /log", "GET /fw", "GET /fw"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200]
--- response_headers eval
[("X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0") x 7]
--- response_headers_like eval
[("X-RateLimit-Reset: [01]") x 7]



=== TEST 6: a window of 0 and one past 366d are refused
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_w0 rate=1 window=0ms;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*window must be between 1ms and 366d in "window=0ms" in \S+nginx\.conf:\d+/



=== TEST 6b: a window of 367d is refused
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_w367 rate=1 window=367d;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*window must be between 1ms and 366d in "window=367d" in \S+nginx\.conf:\d+/



=== TEST 7: a 366d window (the largest): rejected for 366 days; and rate=1r/d for a day
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_year rate=1 window=366d algorithm=sliding_log;
    rate_guard_zone $remote_addr zone=t040_day rate=1r/d algorithm=sliding_log;
--- config
    location = /year {
        rate_guard zone=t040_year;
        empty_gif;
    }
    location = /day {
        rate_guard zone=t040_day;
        empty_gif;
    }
--- request eval
["GET /year", "GET /year", "GET /day", "GET /day"]
--- error_code eval
[200, 429, 200, 429]
--- response_headers eval
["X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0"]
--- response_headers_like eval
["X-RateLimit-Reset: 3162240[01]", "Retry-After: (?:316223\\d\\d|3162240[01])",
 "X-RateLimit-Reset: 864(?:00|01)", "Retry-After: (?:863\\d\\d|864(?:00|01))"]



=== TEST 8: 50 zones in one location: one Redis round trip per request for all of them
--- http_config eval
"    rate_guard_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n"
. CORE::join('', map { "    rate_guard_zone \$remote_addr zone=t040_z$_ rate=" . ($_ == 37 ? 2 : 100) . "r/m;\n" } 1 .. 50)
--- config eval
"    add_header X-Zone \$rate_guard_zone always;\n"
. "    location = /t {\n"
. CORE::join('', map { "        rate_guard zone=t040_z$_;\n" } 1 .. 50)
. "        empty_gif;\n    }\n"
. "    location = /metrics {\n        rate_guard_metrics;\n    }\n"
--- request eval
["GET /t", "GET /t", "GET /t", "GET /metrics"]
--- error_code eval
[200, 200, 429, 200]
--- response_headers eval
["X-Zone: t040_z37\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 1",
 "X-Zone: t040_z37\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0",
 "X-Zone: t040_z37\nX-RateLimit-Limit: 2\nX-RateLimit-Remaining: 0", ""]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/429/,
 qr/\A(?=(?:.|\n)*rate_guard_redis_round_trips_total 3\n)(?=(?:.|\n)*rate_guard_requests_rejected_total\{zone="t040_z37"\} 1\n)/
 . CORE::join('', map { "(?=(?:.|\\n)*rate_guard_requests_passed_total\\{zone=\"t040_z$_\"\\} 2\\n)" } 1 .. 50)]



=== TEST 9: 500 zones defined, 200 locations each with a zone of its own and a shared one
--- http_config eval
"    rate_guard_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;\n"
. "    rate_guard_zone \$remote_addr zone=t040_shared rate=1000r/m;\n"
. CORE::join('', map { "    rate_guard_zone \$remote_addr zone=t040_l$_ rate=1r/m;\n" } 1 .. 499)
--- config eval
CORE::join('', map { "    location = /l$_ {\n        rate_guard zone=t040_shared;\n        rate_guard zone=t040_l$_;\n        empty_gif;\n    }\n" } 1 .. 200)
. "    location = /metrics {\n        rate_guard_metrics;\n    }\n"
--- request eval
["GET /l1", "GET /l1", "GET /l100", "GET /l200", "GET /l200", "GET /metrics"]
--- error_code eval
[200, 429, 200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0", "X-RateLimit-Limit: 1",
 "X-RateLimit-Limit: 1\nX-RateLimit-Remaining: 0", "X-RateLimit-Limit: 1", "X-RateLimit-Limit: 1", ""]
--- response_body_like eval
[qr/GIF89a/, qr/429/, qr/GIF89a/, qr/GIF89a/, qr/429/,
 qr/rate_guard_requests_passed_total\{zone="t040_shared"\} 3\n(?:rate_guard_requests_passed_total\{zone="t040_l\d+"\} [01]\n){499}/]



=== TEST 10: rate_guard inside "if" is refused, as limit_req is
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_if rate=1r/m;
--- config
    location = /t {
        if ($arg_limited) {
            rate_guard zone=t040_if;
        }
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 10b: limit_req inside "if": the convention rate_guard follows
--- http_config
    limit_req_zone $binary_remote_addr zone=t040_if_lr:1m rate=1r/s;
--- config
    location = /t {
        if ($arg_limited) {
            limit_req zone=t040_if_lr;
        }
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"limit_req" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 10c: the other per-location directives are refused inside "if" too
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /t {
        if ($arg_x) {
            rate_guard_dry_run on;
        }
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard_dry_run" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 11: SSI: a page and its includes are checked once, as the page; includes alone are not checked
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_ssi rate=2r/m;
--- config
    location = /page.html {
        ssi on;
        rate_guard zone=t040_ssi;
    }
    location = /free.html {
        ssi on;
    }
    location = /inc.txt {
        rate_guard zone=t040_ssi;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- user_files
>>> page.html
<!--# include virtual="/inc.txt" --><!--# include virtual="/inc.txt" --><!--# include virtual="/inc.txt" -->
>>> free.html
<!--# include virtual="/inc.txt" --><!--# include virtual="/inc.txt" --><!--# include virtual="/inc.txt" -->
>>> inc.txt
inc
--- request eval
["GET /page.html", "GET /page.html", "GET /page.html", "GET /free.html", "GET /metrics"]
--- error_code eval
[200, 200, 429, 200, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", "!X-RateLimit-Limit", ""]
--- response_body_like eval
[qr/\Ainc\ninc\ninc\n\n?\z/, qr/\Ainc\ninc\ninc\n\n?\z/, qr/429/, qr/\Ainc\ninc\ninc\n\n?\z/,
 qr/rate_guard_requests_passed_total\{zone="t040_ssi"\} 2\n(.|\n)*rate_guard_requests_rejected_total\{zone="t040_ssi"\} 1\n(.|\n)*rate_guard_redis_round_trips_total 3\n/]



=== TEST 12: mirror: the mirrored subrequest is not checked
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_mirror rate=2r/m;
--- config
    location = /m {
        rate_guard zone=t040_mirror;
        mirror /mirrored;
        empty_gif;
    }
    location = /mirrored {
        internal;
        rate_guard zone=t040_mirror;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
["GET /m", "GET /m", "GET /m", "GET /metrics"]
--- error_code eval
[200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", ""]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/429/,
 qr/rate_guard_requests_passed_total\{zone="t040_mirror"\} 2\n(.|\n)*rate_guard_redis_round_trips_total 3\n/]



=== TEST 13: auth_request: the auth subrequest is not checked; a rejection comes before it
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_auth rate=2r/m;
    log_subrequest on;
    log_format t040_auth "$uri";
--- config
    location = /api {
        rate_guard zone=t040_auth;
        auth_request /auth;
        empty_gif;
    }
    location = /auth {
        rate_guard zone=t040_auth;
        access_log logs/t040_auth.log t040_auth;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
    location = /auth.log {
        alias logs/t040_auth.log;
    }
--- request eval
["GET /api", "GET /api", "GET /api", "GET /metrics", "GET /auth.log"]
--- error_code eval
[200, 200, 429, 200, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", "", ""]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/429/,
 qr/rate_guard_requests_passed_total\{zone="t040_auth"\} 2\n(.|\n)*rate_guard_redis_round_trips_total 3\n/,
 qr/\A\/auth\n\/auth\n\z/]



=== TEST 14: internal redirects are not checked again: error_page, try_files, named location, rewrite, index
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_redir rate=10r/m algorithm=sliding_log;
    rate_guard_zone $remote_addr zone=t040_redir_other rate=10r/m algorithm=sliding_log;
--- config
    add_header X-Zone $rate_guard_zone always;
    location /ep/ {
        rate_guard zone=t040_redir;
        error_page 404 = /fallback;
    }
    location = /fallback {
        rate_guard zone=t040_redir_other;
        empty_gif;
    }
    location /tf/ {
        rate_guard zone=t040_redir;
        try_files $uri @named;
    }
    location @named {
        rate_guard zone=t040_redir_other;
        empty_gif;
    }
    location /rw/ {
        rate_guard zone=t040_redir;
        rewrite ^ /target last;
    }
    location = /target {
        rate_guard zone=t040_redir;
        empty_gif;
    }
    location /idx/ {
        rate_guard zone=t040_redir;
        index index.html;
    }
    location = /idx/index.html {
        rate_guard zone=t040_redir_other;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- user_files
>>> idx/index.html
index
--- request eval
["GET /ep/missing", "GET /tf/missing", "GET /rw/x", "GET /idx/", "GET /metrics"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-Zone: t040_redir\nX-RateLimit-Remaining: 9", "X-Zone: t040_redir\nX-RateLimit-Remaining: 8",
 "X-Zone: t040_redir\nX-RateLimit-Remaining: 7", "X-Zone: t040_redir\nX-RateLimit-Remaining: 6", ""]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/GIF89a/, qr/\Aindex\n\z/,
 qr/rate_guard_requests_passed_total\{zone="t040_redir"\} 4\nrate_guard_requests_passed_total\{zone="t040_redir_other"\} 0\n(.|\n)*rate_guard_redis_round_trips_total 4\n/]



=== TEST 15: rate_guard at http level is inherited by servers and locations without their own
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_inh_http rate=3r/m;
    rate_guard_zone $remote_addr zone=t040_inh_loc rate=5r/m;
    rate_guard zone=t040_inh_http;
--- config
    location = /a {
        empty_gif;
    }
    location = /b {
        rate_guard zone=t040_inh_loc;
        empty_gif;
    }
    location = /c {
        rate_guard off;
        empty_gif;
    }
--- request eval
["GET /a", "GET /b", "GET /c", "GET /a"]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 2", "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4",
 "!X-RateLimit-Limit", "X-RateLimit-Limit: 3\nX-RateLimit-Remaining: 1"]



=== TEST 16: a server's own lines replace the http ones; locations inherit the server's; nested locations too
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_inh2_http rate=3r/m;
    rate_guard_zone $remote_addr zone=t040_inh2_srv rate=4r/m;
    rate_guard_zone $remote_addr zone=t040_inh2_loc rate=5r/m;
    rate_guard zone=t040_inh2_http;
--- config
    rate_guard zone=t040_inh2_srv;
    location = /b {
        empty_gif;
    }
    location /c {
        rate_guard zone=t040_inh2_loc;
        location /c/inner {
            empty_gif;
        }
        empty_gif;
    }
    location = /d {
        rate_guard off;
        empty_gif;
    }
    location = /metrics {
        rate_guard off;
        rate_guard_metrics;
    }
--- request eval
["GET /b", "GET /c", "GET /c/inner", "GET /d", "GET /metrics"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit: 4\nX-RateLimit-Remaining: 3", "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 4",
 "X-RateLimit-Limit: 5\nX-RateLimit-Remaining: 3", "!X-RateLimit-Limit", "!X-RateLimit-Limit"]
--- response_body_like eval
[qr/GIF89a/, qr/GIF89a/, qr/GIF89a/, qr/GIF89a/,
 qr/rate_guard_requests_passed_total\{zone="t040_inh2_http"\} 0\nrate_guard_requests_passed_total\{zone="t040_inh2_srv"\} 1\nrate_guard_requests_passed_total\{zone="t040_inh2_loc"\} 2\n/]



=== TEST 17: sliding_log refuses a cost that would write a million sorted-set entries per request
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_log_cost rate=1000000000r/s algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t040_log_cost cost=1000000;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*cost 1000000 is too large for zone "t040_log_cost" .* in \S+nginx\.conf:\d+/



=== TEST 17b: sliding_log with the largest limit and its largest cost is decided within the timeout
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $remote_addr zone=t040_log_cost2 rate=1000000000r/s algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=t040_log_cost2 cost=1000;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 200]
--- response_headers eval
["X-Status: PASSED\nX-RateLimit-Limit: 1000000000\nX-RateLimit-Remaining: 999999000",
 "X-Status: PASSED\nX-RateLimit-Limit: 1000000000"]
--- response_headers_like eval
["", "X-RateLimit-Remaining: 99999(8|9)000"]



=== TEST 18: a Redis without cluster support named in cluster=: a clear error, the fail policy decides
--- http_config
    rate_guard_redis cluster=127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms connect_timeout=100ms;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- response_headers
X-Status: ERROR
--- error_log eval
qr/\[error\] .*rate_guard: cluster node 127\.0\.0\.1:\d+: CLUSTER SLOTS failed: "ERR This instance has cluster support disabled"/
