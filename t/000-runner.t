# Exercises the Test::Nginx::Socket data format with plain nginx features
# only (no rate_guard module), so that t/lib's runner and the real CPAN one
# can be checked against each other: `t/run t/000-runner.t` must pass with
# either (TEST_NGINX_LIB=<test-nginx>/lib selects the real one).

use Test::Nginx::Socket;

repeat_each(2);

# tests per block: 7 4 3 6 4 3 3 3 2 4 3 2 8 = 52 = 3 * 13 blocks + 13
plan tests => repeat_each() * (3 * blocks() + 13);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: return 200 with a body and headers
--- config
    location = /hello {
        add_header X-Demo yes;
        return 200 "hello\n";
    }
--- request
GET /hello
--- response_headers
Content-Type: text/plain
X-Demo: yes
!ETag
--- response_body
hello
--- no_error_log
[error]
[crit]



=== TEST 2: 404 from the static root is logged; add_header skips 404s
--- config
    add_header X-Demo yes;
--- request
GET /nope.html
--- error_code: 404
--- response_headers
!X-Demo
--- response_body_like: 404 Not Found
--- error_log eval
qr{\[error\] .*open\(\) "[^"]*/html/nope\.html" failed \(2: No such file or directory\)}



=== TEST 3: more_headers and $TEST_NGINX_SERVER_PORT substitution
--- config
    location = /echo {
        add_header X-Conf-Port $TEST_NGINX_SERVER_PORT;
        return 200 "foo=$http_x_foo port=$server_port host=$host\n";
    }
--- request
GET /echo
--- more_headers
X-Foo: bar
--- response_headers
X-Conf-Port: $ServerPort
--- response_body
foo=bar port=$TEST_NGINX_SERVER_PORT host=localhost



=== TEST 4: pipelined requests share one connection
--- config
    location = /a { return 200 "a $connection_requests\n"; }
    location = /b { return 201 "b $connection_requests\n"; }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- error_code eval
[200, 201]
--- response_body eval
["a 1\n", "b 2\n"]
--- no_error_log
[error]



=== TEST 5: several requests, each on its own connection; a request body
--- config
    location = /a { return 200 "a $connection_requests\n"; }
    location = /len { return 200 "len=$http_content_length\n"; }
--- request eval
["GET /a", "POST /len\nhello"]
--- response_body eval
["a 1\n", "len=5\n"]



=== TEST 6: raw_request with a bad header line: 400, logged at info
--- config
    location = /t { return 200 "ok\n"; }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\nFoo bar\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line
while reading client request headers



=== TEST 7: must_die on an unknown directive
--- config
    foo bar;
--- must_die
--- error_log eval
["[emerg]", qr/unknown directive "foo" in \S+\/conf\/nginx\.conf:\d+/]
--- suppress_stderr



=== TEST 8: must_die with an exit code; main_config is at the top level
--- main_config
events {}
--- config
--- must_die: 1
--- error_log
[emerg]
"events" directive is duplicate
--- suppress_stderr



=== TEST 9: main_config and http_config land in their contexts
--- main_config
    worker_rlimit_nofile 1024;
--- http_config
    map $arg_x $x_word {
        default none;
        1       one;
    }
--- config
    location = /map { return 200 "x=$x_word\n"; }
--- request
GET /map?x=1
--- response_body
x=one



=== TEST 10: header and body patterns
--- config
    location = /like {
        add_header X-Num 12345;
        return 200 "value: 42\n";
    }
--- request
GET /like
--- response_headers_like
X-Num: \d{5}
Content-Length: 1\d
--- response_body_like: ^value: \d+$



=== TEST 11: user_files are served from html/
--- user_files
>>> sub/greeting.txt
hi from a file
--- config
--- request
GET /sub/greeting.txt
--- timeout: 5
--- wait: 0.05
--- response_headers
Content-Length: 15
--- response_body
hi from a file



=== TEST 12: a block without config reuses the running server
--- request
GET /sub/greeting.txt
--- response_body
hi from a file



=== TEST 13: chunked responses (SSI output has no length), pipelined
--- user_files
>>> ssi.html
uri=<!--# echo var="uri" -->
--- config
    location = /ssi.html { ssi on; }
--- pipelined_requests eval
["GET /ssi.html", "GET /ssi.html?again"]
--- response_headers eval
["Transfer-Encoding: chunked\n!Content-Length",
 "Transfer-Encoding: chunked\n!Content-Length"]
--- response_body eval
["uri=/ssi.html\n", "uri=/ssi.html\n"]
