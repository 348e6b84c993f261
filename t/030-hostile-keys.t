# Hostile client keys: empty, 1, 64, 65 and 8,000 bytes, binary bytes, NUL,
# CR/LF, UTF-8, quotes and backslashes. Each is limited on its own bytes (limit
# 2: two pass, the third gets 429), keys that differ in one byte have separate
# limits, and the rejection line in the error log shows the key escaped (\xHH,
# no raw byte, no CR/LF, no '"'), long keys cut; so is a per-request rate or
# cost value that a client chose and that is not one. After the blocks, Redis itself
# is read: keys over 64 bytes are stored as their SHA-256, shorter ones as they
# are, and every key carries a TTL. Every block uses a zone of its own.

use Test::Nginx::Socket;
use lib 't';
use RateGuard;
use Digest::SHA qw(sha256_hex);

repeat_each(1);
no_shuffle();

# The keys, shared by the blocks (eval sections) and the Redis checks below.
our $K64   = join '', map { chr(ord('a') + $_ % 26) } 0 .. 63;     # 64 bytes: kept raw
our $K64b  = substr($K64, 0, 63) . 'Z';                            # differs in the last byte
our $K65   = $K64 . 'x';                                           # 65 bytes: digested
our $K8000 = ('k' x 7999) . 'A';
our $K8000b = ('k' x 7999) . 'B';
our $BIN   = "a\"b\\c\x1b[31m\x01\x7f\xff";                        # quote, backslash, ESC, DEL, 0xFF
our $BINb  = "a\"b\\c\x1b[31m\x01\x7f\xfe";
our $UTF8  = "\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac";                   # "é日本" in UTF-8
our $UTF8b = "\xc3\xa9\xe6\x97\xa5\xe6\x9c\xad";

load_module_in_every_block();

plan 'no_plan';
run_tests();

# ---- Redis, read after the blocks (their keys live about two windows: 2 min)

my $cli = "$ENV{TEST_NGINX_REDIS_CLI} -h 127.0.0.1 -p $ENV{TEST_NGINX_REDIS_PORT}";

# Every rate_guard:t030_* key as [bytes, PTTL], whatever bytes it holds.
sub redis_keys {
    my $lua = q{local out = {}
        for _, k in ipairs(redis.call('KEYS', 'rate_guard:t030_*')) do
          out[#out + 1] = (k:gsub('.', function(c) return string.format('%02x', c:byte()) end))
                          .. ' ' .. redis.call('PTTL', k)
        end
        return out};
    my @keys;
    for (split /\n/, `$cli --raw EVAL "$lua" 0`) {
        my ($hex, $pttl) = split ' ';
        push @keys, [pack('H*', $hex), $pttl] if defined $pttl;
    }
    return @keys;
}

my %keys = map { $_->[0] => $_->[1] } redis_keys();
Test::More::ok(scalar(keys %keys) >= 10, "Redis holds the keys of this suite (" . scalar(keys %keys) . ")");
for my $key (sort keys %keys) {
    my ($zone) = $key =~ /^rate_guard:(t030_\w+\@sw2):/s;
    my $client = substr($key, length("rate_guard:$zone:"));
    (my $shown = substr($key, 0, 60)) =~ s/([^\x21-\x7e])/sprintf('\x%02X', ord $1)/ge;
    Test::More::ok(length($client) <= 71, "Redis key $shown...: client part of at most 71 bytes");
    Test::More::ok($keys{$key} > 0 && $keys{$key} <= 2 * 60_000,
                   "Redis key $shown...: PTTL $keys{$key} ms, at most two windows");
}
Test::More::ok(!(grep { /^rate_guard:t030_1\@sw2:/ } keys %keys), "an empty key is never stored");
Test::More::ok(exists $keys{"rate_guard:t030_3\@sw2:$K64"}, "a 64-byte key is stored as it is");
Test::More::ok(exists $keys{"rate_guard:t030_4\@sw2:sha256:" . sha256_hex($K65)},
               "a 65-byte key is stored as sha256:<hex of its SHA-256>");
Test::More::ok(exists $keys{"rate_guard:t030_5\@sw2:sha256:" . sha256_hex($K8000)}
               && exists $keys{"rate_guard:t030_5\@sw2:sha256:" . sha256_hex($K8000b)},
               "two 8000-byte keys differing in their last byte: two digests");
Test::More::ok(!(grep { /kkkkkkkkkkkkkkkk/ } keys %keys), "no 8000-byte key reaches Redis raw");
Test::More::ok(exists $keys{"rate_guard:t030_7\@sw2:$BIN"}, "binary bytes are kept as they are (binary-safe arguments)");
Test::More::ok(exists $keys{"rate_guard:t030_9\@sw2:/k/\r\nevil"}, "CR/LF are kept as they are");
Test::More::ok(exists $keys{"rate_guard:t030_10\@sw2:\x7f\x00\x00\x01n"}, "NUL bytes are kept as they are");

__DATA__

=== TEST 1: an empty key is not limited: no header, an empty header; no check is sent
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_1 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_1;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- request eval
[("GET /t") x 4, "GET /metrics"]
--- more_headers eval
["", "X-Key:", "", "X-Key:", ""]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
[("!X-RateLimit-Limit\n!X-RateLimit-Remaining") x 4, ""]
--- response_body_like eval
[(qr/GIF89a/) x 4,
 qr/rate_guard_requests_passed_total\{zone="t030_1"\} 0\n(.|\n)*rate_guard_redis_round_trips_total 0\n/]



=== TEST 2: a 1-byte key is limited on its own; another byte has its own count
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_2 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_2;
        empty_gif;
    }
--- request eval
[("GET /t") x 4]
--- more_headers eval
["X-Key: a", "X-Key: a", "X-Key: a", "X-Key: b"]
--- error_code eval
[200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 1"]



=== TEST 2b: ... the next request of key "a" is logged with the key
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_2 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_2;
        empty_gif;
    }
--- request
GET /t
--- more_headers eval
"X-Key: a"
--- error_code: 429
--- error_log eval
qr/\[error\] .*limiting requests by zone "t030_2", key "a", client: 127\.0\.0\.1/



=== TEST 3: a 64-byte key (the longest kept raw); one differing in its last byte is another client
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_3 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_3;
        empty_gif;
    }
--- request eval
[("GET /t") x 4]
--- more_headers eval
[("X-Key: $::K64") x 3, "X-Key: $::K64b"]
--- error_code eval
[200, 200, 429, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 1"]



=== TEST 3b: ... logged with the whole 64-byte key
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_3 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_3;
        empty_gif;
    }
--- request
GET /t
--- more_headers eval
"X-Key: $::K64"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_3", key "\Q$::K64\E", client:/



=== TEST 4: a 65-byte key (digested) that extends a 64-byte one does not share its count
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_4 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_4;
        empty_gif;
    }
--- request eval
[("GET /t") x 6]
--- more_headers eval
["X-Key: $::K64", "X-Key: $::K64", "X-Key: $::K65", "X-Key: $::K65", "X-Key: $::K65", "X-Key: $::K64"]
--- error_code eval
[200, 200, 200, 200, 429, 429]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 1",
 "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0"]



=== TEST 4b: ... the 65-byte key is logged as sent (cut only past 256 bytes)
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_4 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_4;
        empty_gif;
    }
--- request
GET /t
--- more_headers eval
"X-Key: $::K65"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_4", key "\Q$::K65\E", client:/



=== TEST 5: 8000-byte keys: limited, and separate when only the last byte differs
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_5 rate=2r/m;
--- config
    large_client_header_buffers 4 16k;
    location = /t {
        rate_guard zone=t030_5;
        empty_gif;
    }
--- log_level: error
--- request eval
[("GET /t") x 5]
--- more_headers eval
[("X-Key: $::K8000") x 3, ("X-Key: $::K8000b") x 2]
--- error_code eval
[200, 200, 429, 200, 200]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 0",
 "X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0"]
--- no_error_log eval
[qr/k{257}/, qr/kA/]



=== TEST 5b: ... logged cut at 256 bytes and "..."
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_5 rate=2r/m;
--- config
    large_client_header_buffers 4 16k;
    location = /t {
        rate_guard zone=t030_5;
        empty_gif;
    }
--- log_level: error
--- request
GET /t
--- more_headers eval
"X-Key: $::K8000"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_5", key "k{256}\.\.\.", client: 127\.0\.0\.1/
--- no_error_log eval
[qr/k{257}/, qr/kA/]



=== TEST 6: the literal text "sha256:<digest of a long key>" is a key of its own, not that key
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_6 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_6;
        empty_gif;
    }
--- request eval
[("GET /t") x 4]
--- more_headers eval
["X-Key: $::K65", "X-Key: $::K65", "X-Key: sha256:" . Digest::SHA::sha256_hex($::K65), "X-Key: $::K65"]
--- error_code eval
[200, 200, 200, 429]
--- response_headers eval
["X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 1", "X-RateLimit-Remaining: 0"]



=== TEST 7: binary bytes, quote and backslash: limited on their bytes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_7 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_7;
        empty_gif;
    }
--- log_level: error
--- request eval
[("GET /t") x 4]
--- more_headers eval
[("X-Key: $::BIN") x 3, "X-Key: $::BINb"]
--- error_code eval
[200, 200, 429, 200]
--- no_error_log eval
[qr/[\x00-\x08\x0b-\x1f\x7f-\xff]/, qr/^(?!\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/, qr/key "[^"]*"[^,]/]



=== TEST 7b: ... logged as \xHH: no raw byte, quote or backslash
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_7 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_7;
        empty_gif;
    }
--- log_level: error
--- request
GET /t
--- more_headers eval
"X-Key: $::BIN"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_7", key "a\\x22b\\x5Cc\\x1B\[31m\\x01\\x7F\\xFF", client: 127\.0\.0\.1/
--- no_error_log eval
[qr/[\x00-\x08\x0b-\x1f\x7f-\xff]/, qr/^(?!\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/, qr/key "[^"]*"[^,]/]



=== TEST 8: UTF-8 keys: limited on their bytes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_8 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_8;
        empty_gif;
    }
--- log_level: error
--- request eval
[("GET /t") x 4]
--- more_headers eval
[("X-Key: $::UTF8") x 3, "X-Key: $::UTF8b"]
--- error_code eval
[200, 200, 429, 200]
--- no_error_log eval
[qr/[\x80-\xff]/]



=== TEST 8b: ... logged as \xHH
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_8 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_8;
        empty_gif;
    }
--- log_level: error
--- request
GET /t
--- more_headers eval
"X-Key: $::UTF8"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_8", key "\\xC3\\xA9\\xE6\\x97\\xA5\\xE6\\x9C\\xAC", client:/
--- no_error_log eval
[qr/[\x80-\xff]/]



=== TEST 9: CR/LF cannot be in a header, but $uri decodes %0D%0A: limited on those bytes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $uri zone=t030_9 rate=2r/m;
--- config
    location /k/ {
        rate_guard zone=t030_9;
        empty_gif;
    }
--- log_level: error
--- request eval
["GET /k/%0D%0Aevil", "GET /k/%0D%0Aevil", "GET /k/%0D%0Aevil", "GET /k/%0Aevil", "GET /k/%0D%0Aevil%22"]
--- error_code eval
[200, 200, 429, 200, 200]
--- no_error_log eval
[qr/\r/, qr/^(?!\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/]



=== TEST 9b: ... logged escaped, on one line
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $uri zone=t030_9 rate=2r/m;
--- config
    location /k/ {
        rate_guard zone=t030_9;
        empty_gif;
    }
--- log_level: error
--- request
GET /k/%0D%0Aevil
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_9", key "\/k\/\\x0D\\x0Aevil", client: 127\.0\.0\.1, server: localhost, request: "GET \/k\/%0D%0Aevil HTTP\/1\.1"/
--- no_error_log eval
[qr/\r/, qr/^(?!\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/]



=== TEST 10: NUL bytes ($binary_remote_addr is 7F 00 00 01): limited on those bytes
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr$http_x_key zone=t030_10 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_10;
        empty_gif;
    }
--- log_level: error
--- request eval
[("GET /t") x 4]
--- more_headers eval
["X-Key: n", "X-Key: n", "X-Key: n", "X-Key: m"]
--- error_code eval
[200, 200, 429, 200]
--- no_error_log eval
[qr/\x00/, qr/\x7f/]



=== TEST 10b: ... logged as \x00
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr$http_x_key zone=t030_10 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_10;
        empty_gif;
    }
--- log_level: error
--- request
GET /t
--- more_headers eval
"X-Key: n"
--- error_code: 429
--- error_log eval
qr/limiting requests by zone "t030_10", key "\\x7F\\x00\\x00\\x01n", client:/
--- no_error_log eval
[qr/\x00/, qr/\x7f/]



=== TEST 11: a header with a NUL byte is refused by nginx itself (400) before any check
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_11 rate=2r/m;
--- config
    location = /t {
        rate_guard zone=t030_11;
        empty_gif;
    }
    location = /metrics {
        rate_guard_metrics;
    }
--- log_level: info
--- request
GET /t
--- more_headers eval
"X-Key: a\x00b"
--- error_code: 400
--- error_log
client sent invalid header line
--- no_error_log
limiting requests



=== TEST 11b: ... and no check was sent (the same server: this block has no config)
--- request
GET /metrics
--- response_body_like: rate_guard_redis_round_trips_total 0\n



=== TEST 12: a per-request rate from a header that is not a rate is logged escaped
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $http_x_key zone=t030_12 rate=$http_x_rate window=1m;
--- config
    location = /t {
        rate_guard zone=t030_12;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- log_level: error
--- request
GET /t
--- more_headers eval
"X-Key: k\nX-Rate: 5\x1b[2J\"quoted\xff"
--- error_code: 200
--- response_headers
X-Status: ERROR
--- error_log eval
qr/rate_guard: invalid rate "5\\x1B\[2J\\x22quoted\\xFF"/
--- no_error_log eval
[qr/[\x00-\x08\x0b-\x1f\x7f-\xff]/, qr/"5\x1b/]



=== TEST 13: a per-request cost with CR/LF (a decoded URI) cannot forge a log line
--- http_config
    rate_guard_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    rate_guard_zone $binary_remote_addr zone=t030_13 rate=5r/m;
--- config
    location ~ "(?s)^/cost/(?<c>.*)$" {
        rate_guard zone=t030_13 cost=$c;
        add_header X-Status $rate_guard_status always;
        empty_gif;
    }
--- log_level: error
--- request
GET /cost/1%0D%0A2026/11/23%2000:00:00%20[emerg]%2099%2399:%20forged
--- error_code: 200
--- response_headers
X-Status: ERROR
--- error_log eval
qr/rate_guard: invalid cost "1\\x0D\\x0A2026\/11\/23 00:00:00 \[emerg\] 99#99: forged"/
--- no_error_log eval
[qr/\r/, qr/^2026\/11\/23 00:00:00 \[emerg\] 99#99: forged/]
