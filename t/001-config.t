# Loading the module and every configuration error that `nginx -t` must
# reject with the file, the line and a clear reason.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;

repeat_each(1);
plan tests => repeat_each() * (2 * blocks());
no_shuffle();

load_module_in_every_block();

run_tests();

__DATA__

=== TEST 1: the module loads with every directive in use
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=100ms connect_timeout=100ms prefix=t001:;
    rate_guard_zone $binary_remote_addr zone=per_ip rate=100r/m;
    rate_guard_zone $http_x_api_key zone=per_key rate=5 window=10s algorithm=token_bucket burst=3 lease=on lease_time=250ms;
    rate_guard_status 429;
    rate_guard_fail open;
    rate_guard_headers on;
    rate_guard_dry_run off;
    rate_guard_log_level warn;
--- config
    location = /t {
        rate_guard zone=per_ip;
        rate_guard zone=per_key cost=2;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request
GET /metrics
--- response_body_like: rate_guard_redis_round_trips_total



=== TEST 2: an unknown zone names the rate_guard line
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /t {
        rate_guard zone=nope;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown rate_guard zone "nope" in \S+nginx\.conf:\d+/



=== TEST 3: a duplicate zone
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=1r/s;
    rate_guard_zone $http_x_key zone=a rate=2r/s;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate zone "a" in \S+nginx\.conf:\d+/



=== TEST 4: a bad rate unit
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=100r/x;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid rate "100r\/x" in \S+nginx\.conf:\d+/



=== TEST 5: a zero limit
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=0r/s;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*limit must be between 1 and \d+ in "rate=0r\/s" in \S+nginx\.conf:\d+/



=== TEST 6: a negative limit
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=-5r/s;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid rate "-5r\/s" in \S+nginx\.conf:\d+/



=== TEST 7: an unknown zone option
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s colour=blue;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown option "colour=blue" in \S+nginx\.conf:\d+/



=== TEST 8: rate_guard without rate_guard_redis
--- http_config
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard" needs a "rate_guard_redis" in the http block in \S+nginx\.conf:\d+/



=== TEST 9: a status outside 400..599
--- http_config
    rate_guard_status 200;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*value must be between 400 and 599 in \S+nginx\.conf:\d+/



=== TEST 10: a bare count without window=
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*rate "5" needs "window=" in \S+nginx\.conf:\d+/



=== TEST 11: an unknown algorithm
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s algorithm=leaky;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid algorithm "leaky" in \S+nginx\.conf:\d+/



=== TEST 12: burst= without token_bucket
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s burst=3;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"burst=" is only valid with algorithm=token_bucket in \S+nginx\.conf:\d+/



=== TEST 13: a zero cost
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a cost=0;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*cost must be between 1 and \d+ in "cost=0" in \S+nginx\.conf:\d+/



=== TEST 14: the same zone applied twice at one level
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a;
        rate_guard zone=a cost=2;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*zone "a" is applied twice in \S+nginx\.conf:\d+/



=== TEST 15: rate_guard off mixed with zones
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- config
    location = /t {
        rate_guard zone=a;
        rate_guard off;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard off" cannot be combined with other "rate_guard" lines in \S+nginx\.conf:\d+/



=== TEST 16: a duplicate rate_guard_redis
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_redis 127.0.0.1:6380;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard_redis" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 17: a bad Redis port
--- http_config
    rate_guard_redis 127.0.0.1:99999;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*port must be between 1 and 65535 in "127\.0\.0\.1:99999" in \S+nginx\.conf:\d+/



=== TEST 18: an unknown Redis option
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT keepalive=on;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*unknown option "keepalive=on" in \S+nginx\.conf:\d+/



=== TEST 18b: a tls_ option without tls=on
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT tls_name=redis.test;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"tls_name=" needs "tls=on" in \S+nginx\.conf:\d+/



=== TEST 19: a bad Redis timeout
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=fast;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid timeout "fast" in \S+nginx\.conf:\d+/



=== TEST 20: rate_guard_zone is not allowed in a server
--- config
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s;
--- must_die
--- error_log eval
qr/\[emerg\] .*"rate_guard_zone" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 21: a bad fail policy
--- http_config
    rate_guard_fail maybe;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "maybe" in \S+nginx\.conf:\d+/



=== TEST 22: a bad headers mode
--- http_config
    rate_guard_headers sometimes;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "sometimes" in \S+nginx\.conf:\d+/



=== TEST 23: rate_guard_metrics takes no arguments
--- config
    location = /metrics {
        rate_guard_metrics json;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of arguments in "rate_guard_metrics" directive in \S+nginx\.conf:\d+/



=== TEST 24: an invalid zone name
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a:b rate=5r/s;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid zone name "a:b" in \S+nginx\.conf:\d+/



=== TEST 25: a Redis host name is resolved when the configuration loads
--- http_config
    rate_guard_redis localhost:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=t001_25 rate=5r/s;
--- config
    location = /t {
        rate_guard zone=t001_25;
        empty_gif;
    }
--- request
GET /t
--- error_code: 200
--- response_headers
Content-Type: image/gif



=== TEST 26: a cost too large for sliding_log (one entry per unit of cost)
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=1000000r/s algorithm=sliding_log;
--- config
    location = /t {
        rate_guard zone=a cost=5000;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*cost 5000 is too large for zone "a" \(sliding_log records one entry per unit of cost: at most 1000\) in \S+nginx\.conf:\d+/



=== TEST 27: a cost above the zone's limit would reject every request
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=3r/m;
--- config
    location = /t {
        rate_guard zone=a cost=4;
        empty_gif;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*cost 4 is larger than the limit 3 of zone "a": every request would be rejected in \S+nginx\.conf:\d+/



=== TEST 28: Redis Cluster has only database 0
--- http_config
    rate_guard_redis cluster=127.0.0.1:$TEST_NGINX_REDIS_PORT db=2;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*Redis Cluster has only database 0: "db=" cannot be used with "cluster=" in \S+nginx\.conf:\d+/



=== TEST 29: with Redis Cluster the client key is the hash tag: no brace in the prefix
--- http_config
    rate_guard_redis cluster=127.0.0.1:$TEST_NGINX_REDIS_PORT "prefix={rl}:";
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*with "cluster=" the prefix cannot contain '\{' or '\}': "\{rl\}:" in \S+nginx\.conf:\d+/




=== TEST 30: lease= is on or off
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s lease=yes;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid "lease=yes", expected "lease=on" or "lease=off" in \S+nginx\.conf:\d+/



=== TEST 31: lease_time= is at most 60s
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=a rate=5r/s lease_time=2m;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*lease_time must be between 1ms and 60s in "lease_time=2m" in \S+nginx\.conf:\d+/
