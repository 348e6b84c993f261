package Test::Nginx::Socket;

# rate_guard's own minimal runner for test suites written in the data format
# of CPAN's Test::Nginx::Socket (openresty/test-nginx).
#
# It is used ONLY when the real Test::Nginx is not available (Debian does not
# package it); t/run puts t/lib on @INC in that case.  Suites must run
# unchanged under either, so this module follows the real one's section
# semantics, test names and counts for the subset it implements.  It is an
# independent implementation, not a copy.
#
# Sections: main_config post_main_config http_config config user_files
# log_level must_die suppress_stderr request pipelined_requests raw_request
# raw_request_middle_delay more_headers timeout wait shutdown abort
# ignore_response error_code error_code_like response_headers
# response_headers_like raw_response_headers_like response_body
# response_body_like response_body_unlike error_log no_error_log
# grep_error_log grep_error_log_out, plus Test::Base's ONLY LAST SKIP.
#
# Deliberate differences from the real module: nginx listens on 127.0.0.1
# only; an nginx crash fails the block; a HEAD request inside
# pipelined_requests is parsed as bodiless; the debugging/profiling modes
# (HUP reload, valgrind, stap, check-leak, benchmark, HTTP/2 and 3, tcp/udp
# mock servers, curl) are not implemented.

use v5.10.1;
use strict;
use warnings;

use Test::Base -base;    # blocks(), plan, ONLY/LAST/SKIP, filters like eval
use Test::LongString ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle min);
use POSIX ();
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep);

our @EXPORT = qw(
    run_tests run_test repeat_each no_shuffle no_long_string is_str
    log_level master_on master_off master_process_enabled workers
    worker_connections add_block_preprocessor no_root_location env_to_nginx
    server_addr server_name server_port server_port_for_client server_root
    html_dir timeout config_preamble check_accum_error_log bail_out
);

# ---------------------------------------------------------------- settings
# Same environment variables and defaults as the real module.

our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoLongString;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess     = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Workers           = 1;
our $WorkerConnections = 64;
our $NoRootLocation    = 0;
our $ServerAddr        = '127.0.0.1';
our $ServerName        = 'localhost';
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $NginxBinary       = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Sleep             = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ConfigPreamble    = '';
our (@EnvToNginx, @BlockPreprocessors);

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $ConfDir    = "$ServRoot/conf";
our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfFile   = "$ConfDir/nginx.conf";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile    = "$LogDir/nginx.pid";

my $NginxPid;         # nginx started for the current config, if any
my $HaveConfig;       # a block with --- config has been set up already
my $ErrLogPos = 0;    # error.log offset already examined in this block
my %RandPorts;        # $TEST_NGINX_RAND_PORT_N values of the current block
my $NginxV;           # `nginx -V` output

sub repeat_each (@)        { $RepeatEach = shift if @_; $RepeatEach }
sub no_shuffle ()          { $NoShuffle = 1 }
sub no_long_string ()      { $NoLongString = 1 }
sub log_level (@)          { $LogLevel = shift if @_; $LogLevel }
sub master_on ()           { $MasterProcess = 'on' }
sub master_off ()          { $MasterProcess = 'off' }
sub workers (@)            { $Workers = shift if @_; $Workers }
sub worker_connections (@) { $WorkerConnections = shift if @_; $WorkerConnections }
sub no_root_location ()    { $NoRootLocation = 1 }
sub server_addr (@)        { $ServerAddr = shift if @_; $ServerAddr }
sub server_name (@)        { $ServerName = shift if @_; $ServerName }
sub server_port (@)        { $ServerPort = shift if @_; $ServerPort }
sub server_port_for_client (@) {
    $ServerPortForClient = shift if @_;
    $ServerPortForClient;
}
sub server_root ()           { $ServRoot }
sub html_dir ()              { $HtmlDir }
sub timeout (@)              { $Timeout = shift if @_; $Timeout }
sub config_preamble ($)      { $ConfigPreamble = shift }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }

sub master_process_enabled (@) {
    $MasterProcess = $_[0] ? 'on' : 'off' if @_;
    $MasterProcess;
}

sub env_to_nginx (@) {
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub bail_out (@) {
    stop_nginx();
    Test::More::BAIL_OUT(join '', @_);
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return is($got, $expected, $desc) if $NoLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

# ---------------------------------------------------------------- driver

sub run_tests () {
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
    }
    stop_nginx();
}

sub run_test ($) {
    my $block = shift;
    my $name  = $block->name;
    %RandPorts = ();
    my $config = expand_env(scalar $block->config, $name);

    if (defined $config) {
        # Like the real one: a fresh server root and nginx for every block
        # that has a config; a block without one reuses the running server.
        stop_nginx();
        setup_server_root();
        write_user_files($block);
        write_config_file($block, $config);
        $HaveConfig = 1;
        return run_must_die($block) if defined $block->must_die;
        start_nginx($block);

    } elsif (!$HaveConfig) {
        bail_out("$name - No '--- config' section specified and could not get previous one");
    }

    # The offset is reset once per block, not per repetition (as the real one).
    $ErrLogPos = 0;
    for my $rep (0 .. $RepeatEach - 1) {
        write_user_files($block) if $rep > 0;
        run_requests($block, $rep);
        if (defined $NginxPid && !is_alive($NginxPid)) {
            fail("$name - nginx (pid $NginxPid) is gone: it crashed");
            undef $NginxPid;
        }
    }
}

# nginx must refuse to start: one test per repetition for the exit status,
# then --- error_log is matched against what it logged.
sub run_must_die {
    my $block = shift;
    my $name  = $block->name;
    my $want  = $block->must_die;
    $ErrLogPos = 0;
    for my $rep (0 .. $RepeatEach - 1) {
        my $status = run_nginx($block);
        if ($status == -1) {
            fail("$name - failed to execute the nginx command line");
        } elsif ($status & 127) {
            fail("$name - nginx crashed on signal " . ($status & 127));
        } elsif (looks_like_number($want)) {
            is($status >> 8, $want, "$name - die with the expected exit code");
        } else {
            isnt($status, 0, "$name - die as expected");
        }
        check_error_log($block, $rep);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it\n";
            wait_for_pid_file();
            stop_nginx();
        }
    }
}

# ---------------------------------------------------------------- server

sub setup_server_root {
    # Remove only what we create, so a misused TEST_NGINX_SERVROOT cannot
    # cost user data.
    remove_tree($ConfDir, $LogDir, $HtmlDir, "$ServRoot/cache",
                glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    make_path($ConfDir, $LogDir, $HtmlDir);
    write_file("$HtmlDir/index.html",
        '<html><head><title>It works!</title></head><body>It works!</body></html>');
}

sub write_file {
    my ($path, $data) = @_;
    open my $out, '>', $path or bail_out("Can't open $path for writing: $!");
    binmode $out;
    print $out $data;
    close $out;
}

sub write_user_files {
    my $block = shift;
    my $files = $block->user_files or return;
    my $name  = $block->name;
    if (!ref $files) {
        # ">>> name [touch-date]" starts each file, its lines follow
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, '', $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    }
    bail_out("$name - --- user_files must be a string or an ARRAY")
        if ref $files ne 'ARRAY';
    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path($1) if $path =~ m{(.*)/} && !-d $1;
        write_file($path, expand_env($body // '', $name));
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - touch -t $date $path failed");
        }
    }
}

sub write_config_file {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $main = $block->main_config // '';
    if (my $mods = $ENV{TEST_NGINX_LOAD_MODULES}) {
        $main = join(' ', map { "load_module $_;" } split ' ', $mods) . " $main";
    }
    $main = expand_env($main, $name);
    my $post_main = expand_env($block->post_main_config // '', $name);
    my $http      = expand_env($block->http_config // '', $name);
    my $level     = $block->log_level || $LogLevel;
    my $env       = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;

    # Temp paths inside the server root: the packaged defaults (/var/lib/nginx)
    # may not exist or be writable.
    $NginxV //= `$NginxBinary -V 2>&1` // '';
    my $temps = '';
    for my $t (qw(client_body proxy fastcgi scgi uwsgi)) {
        next if $NginxV =~ /--without-http_${t}_module/;
        next if $http =~ /\b${t}_temp_path\b/;
        $temps .= " ${t}_temp_path $ServRoot/${t}_temp;";
    }

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    # the real one runs workers as root when root (they must read servroot)
    my $user = $> == 0 ? "user root;\n" : '';

    # Layout and order follow the real write_config_file; the one intended
    # difference is "listen 127.0.0.1:PORT" instead of "listen PORT".
    write_file($ConfFile, <<"_EOC_");
worker_processes  $Workers;
daemon on;
master_process $MasterProcess;
error_log $ErrLogFile $level;
pid       $PidFile;
$env
$main

http {
    access_log $AccLogFile;$temps

    default_type text/plain;
    keepalive_timeout  68000ms;

$http
    server {
        listen          127.0.0.1:$ServerPort;
        server_name     '$ServerName';
        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
$user
_EOC_
}

# Runs the nginx command line like the real one (-e so that early errors
# land in logs/error.log too); returns the wait status.
sub run_nginx {
    my $block = shift;
    my @cmd = ($NginxBinary, '-e', $ErrLogFile, '-p', "$ServRoot/", '-c', $ConfFile);
    my $pid = fork // bail_out("fork() failed: $!");
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null' if defined $block->suppress_stderr;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return $?;
}

sub start_nginx {
    my $block = shift;
    my $name  = $block->name;
    my $found = $NginxBinary =~ m{/} ? -x $NginxBinary
              : grep { -x "$_/$NginxBinary" } split /:/, $ENV{PATH} // '';
    bail_out("$name - Cannot find the nginx executable $NginxBinary") unless $found;

    # Only a busy port (the previous instance may still hold it) is worth
    # a retry.
    my ($status, $waited) = (0, 0);
    while (($status = run_nginx($block)) != 0) {
        my @emerg = grep { /\[emerg\]/ } @{ error_log_data(1) };
        if ($waited >= 5 || !grep { /Address already in use/ } @emerg) {
            diag(@emerg) if @emerg;
            bail_out("$name - Cannot start nginx using $NginxBinary -p $ServRoot/"
                     . " -c $ConfFile (status code $status)");
        }
        sleep 0.5;
        $waited += 0.5;
    }
    $NginxPid = wait_for_pid_file();
    sleep $Sleep;
}

# With "daemon on" the pid file is written by the daemonized child, possibly
# after the process we started has already exited.
sub wait_for_pid_file {
    for (my $t = 0; $t < $Timeout; $t += 0.01) {
        my $pid = read_pid_file();
        return $pid if $pid;
        sleep 0.01;
    }
    return undef;
}

sub read_pid_file {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in> // '';
    close $in;
    return $pid =~ /^\s*(\d+)/ ? $1 : undef;
}

# kill(0) is true for zombies, which nginx (daemonized, reparented) may
# briefly be; a zombie has exited.
sub is_alive {
    my $pid = shift;
    return 0 unless kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$in> // '';
    return $stat =~ /\)\s+Z/ ? 0 : 1;
}

# Stops the nginx of this server root by the PID in its pid file (never by
# name): QUIT, then KILL after the timeout.
sub stop_nginx {
    my $pid = $NginxPid // read_pid_file();
    undef $NginxPid;
    return unless $pid && is_alive($pid);
    kill 'QUIT', $pid;
    for (my $t = 0; $t < $Timeout && is_alive($pid); $t += 0.02) {
        sleep 0.02;
    }
    if (is_alive($pid)) {
        warn "WARNING: nginx $pid did not quit in $Timeout s; killing it\n";
        kill 'KILL', $pid;
        for (my $t = 0; $t < 1 && is_alive($pid); $t += 0.02) { sleep 0.02 }
    }
    unlink $PidFile;
}

END {
    local $?;    # keep Test::Builder's exit status
    stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
}

# ---------------------------------------------------------------- helpers

sub parse_time {
    my $t = shift;
    return undef unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

# $TEST_NGINX_* is replaced by the environment variable; an undefined one is
# fatal.  $TEST_NGINX_RAND_PORT_N gets a free loopback port per block.
sub expand_env {
    my ($text, $name) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $RandPorts{$var} //= free_port();
        } else {
            defined $ENV{$var}
                or bail_out("$name - No environment $var defined.\n");
            $ENV{$var};
        }
    }ge;
    return $text;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or bail_out("cannot find a free port: $!");
    return $s->sockport;
}

# An expected value for the $idx-th response: with several requests the
# section must be an array (as in the real one).
sub indexed {
    my ($name, $value, $idx, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        return $value->[$need_array ? $idx : 0];
    }
    bail_out("$name - You asked for many requests, the expected results"
             . " should be arrays as well.") if $need_array;
    return $value;
}

# "Name: value" lines; "!Name" means the header must be absent (undef).
sub parse_header_spec {
    my @pairs;
    for my $line (split /\n/, shift // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @pairs, [$line, undef];
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            push @pairs, [$k, $v // ''];
        }
    }
    return @pairs;
}

# ---------------------------------------------------------------- requests

# --- more_headers text to CRLF header lines (# lines are comments)
sub more_headers_for {
    my ($block, $idx) = @_;
    my $more = $block->more_headers // '';
    if (ref $more eq 'ARRAY') {
        $more = $more->[$idx];
        bail_out($block->name . " - --- more_headers lacks data for request $idx")
            unless defined $more;
    }
    my ($out, $chunked) = ('', 0);
    for my $h (split /\n+/, $more) {
        next if $h =~ /^\s*#/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# Turns "METHOD [URI [VERSION]]\n[body]" (possibly split into packets) into
# an HTTP request: Host and Connection headers unless given, --- more_headers,
# and Content-Length for a (trimmed) body.  Returns the packets to send.
sub build_request {
    my ($name, $packets, $hdrs, $chunked, $conn) = @_;
    my $text = join '', @$packets;
    my ($line, $nl, $body) = $text =~ /\A([^\n]*)(\n?)(.*)\z/s;
    my ($meth, $uri, $ver) = $line =~ /^\s*(\S+)(?: +(\S+))?(?: +(\S+))?\s*$/
        or bail_out("$name - Request line is not valid. Should be"
                    . " 'meth [url [version]]' but got \"$line\".");
    $uri //= '/';
    $ver //= 'HTTP/1.1';

    my $body_start = length($line) + length($nl);
    my ($cut, $len_hdr) = (0, '');
    if (!$chunked && $body ne '' && $hdrs !~ /(?:^|\n)Content-Length:/) {
        $cut = length(($body =~ /\A(\s*)/)[0]);
        $body =~ s/^\s+|\s+$//gs;
        $len_hdr = 'Content-Length: ' . length($body) . "\r\n";
    }
    my $head = "$meth $uri $ver\r\n";
    $head .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/i;
    $head .= "$hdrs$len_hdr\r\n";
    my $req = $head . $body;

    # keep the caller's packet boundaries, mapped into the rewritten request
    my (@out, $pos, $at);
    $pos = $at = 0;
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $at += length $p;
        my $to = $at < $body_start
            ? min($at, length($head))
            : length($head) + min(length($body), max0($at - $body_start - $cut));
        push @out, substr($req, $pos, $to - $pos);
        $pos = $to;
    }
    push @out, substr($req, $pos);
    return \@out;
}

sub max0 { $_[0] < 0 ? 0 : $_[0] }

# A list of requests, each a list of {value, delay_before} packets; the
# pipelined requests are one request of one packet.
sub get_requests {
    my $block = shift;
    my $name  = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        my @parts = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [[ map { ref $_ eq 'HASH' ? $_ : { value => $_ } } @parts ]];
    }

    if (defined(my $reqs = $block->pipelined_requests)) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            if ref $reqs ne 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $r = expand_env($reqs->[$i], $name);
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= join '', @{ build_request($name, [$r], more_headers_for($block, $i), $conn) };
        }
        return [[{ value => $all }]];
    }

    my $req = $block->request;
    bail_out("$name - request empty") unless defined $req;
    if (!ref $req) {
        # comment lines and blank space before the request line
        $req =~ s/\A(?:\s*#[^\n]*\n)*\s*//;
        $req = [$req];
    }
    bail_out("$name - invalid --- request: MUST be string or array of requests")
        if ref $req ne 'ARRAY';
    my @list;
    for my $i (0 .. $#$req) {
        my $one = $req->[$i];
        my @parts = ref $one eq 'ARRAY' ? @$one : ($one);
        my @values = map { ref $_ eq 'HASH' ? $_->{value} : $_ } @parts;
        my $built = build_request($name, \@values, more_headers_for($block, $i), 'close');
        push @list, [ map {
            { value => $built->[$_],
              delay_before => ref $parts[$_] eq 'HASH' ? $parts[$_]{delay_before} : undef }
        } 0 .. $#$built ];
    }
    return \@list;
}

# Sends one request's packets on a new connection and reads until the server
# closes it.  Returns the raw response ('' on failure).
sub send_request {
    my ($block, $packets, $timeout) = @_;
    my $name = $block->name;
    local $SIG{PIPE} = 'IGNORE';

    my $sock;
    for my $try (1 .. 50) {
        $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                      PeerPort => $ServerPortForClient,
                                      Proto => 'tcp', Timeout => $timeout);
        last if $sock;
        sleep min(1, $Sleep * $try * ($try + 1) / 2);
    }
    if (!$sock) {
        fail("$name - Can't connect to $ServerAddr:$ServerPortForClient: $! (aborted)");
        return '';
    }

    my $first = 1;
    WRITE: for my $p (@$packets) {
        my $delay = $p->{delay_before} // $block->raw_request_middle_delay;
        sleep $delay if !$first && $delay;
        $first = 0;
        my $off = 0;
        while ($off < length $p->{value}) {
            my $n = syswrite $sock, $p->{value}, length($p->{value}) - $off, $off;
            last WRITE unless defined $n;    # server closed early: read what it said
            $off += $n;
        }
    }
    if (defined(my $how = $block->shutdown)) {
        shutdown $sock, ($how =~ /^\s*$/ ? 1 : $how);
    }

    my ($resp, $sel) = ('', IO::Select->new($sock));
    while (1) {
        if (!$sel->can_read($timeout)) {
            fail("ERROR: client socket timed out - $name") unless defined $block->abort;
            last;
        }
        my $n = sysread $sock, my $buf, 4096;
        if (!defined $n) {
            warn "WARNING: $name - HTTP response read failure: $!\n";
            last;
        }
        last if $n == 0;
        $resp .= $buf;
    }
    close $sock;
    return $resp;
}

# Parses one response off the front of $raw: returns (HTTP::Response or
# undef, raw header text, bytes left after this response).
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my ($head, $rest) = $raw =~ /\A(.*?\r\n)\r\n(.*)\z/s or return (undef, '', '');
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($code, $msg) = $status_line =~ m{^HTTP/\d+\.\d+\s+(\d+)\s*(.*)$}
        or return (undef, $head, '');
    my $res = HTTP::Response->new($code, $msg);
    for (@lines) {
        $res->push_header($1, $2) if /^([^:\s]+)\s*:\s*(.*?)\s*$/;
    }

    my ($body, $left) = ('', '');
    my $te  = $res->header('Transfer-Encoding') // '';
    my $len = $res->header('Content-Length');
    if ($head_req || $code =~ /^(?:1\d\d|204|304)$/) {
        $left = $rest;
    } elsif ($te eq 'chunked') {
        while (1) {
            if ($rest !~ s/\A[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n//) {
                fail("$name - invalid chunked body received: "
                     . ($rest eq '' ? 'no last chunk found' : substr($rest, 0, 40)));
                last;
            }
            my $size = hex $1;
            if ($size == 0) {
                $rest =~ s/\A(?:[^\r\n]+\r\n)*\r\n//;    # trailers
                $left = $rest;
                last;
            }
            if (length($rest) < $size + 2 || substr($rest, $size, 2) ne "\r\n") {
                fail("$name - invalid chunked data received (expected $size bytes and CRLF)");
                last;
            }
            $body .= substr($rest, 0, $size);
            substr($rest, 0, $size + 2) = '';
        }
    } elsif (defined $len && $len =~ /^\d+$/) {
        warn "WARNING: $name - response body truncated: $len expected, but got "
             . length($rest) . "\n" if length($rest) < $len;
        $body = substr($rest, 0, $len);
        $left = length($rest) > $len ? substr($rest, $len) : '';
    } else {
        $body = $rest;    # delimited by the connection close
    }
    $res->content($body);
    return ($res, $head, $left);
}

# ---------------------------------------------------------------- checks

sub run_requests {
    my ($block, $rep) = @_;
    my $name  = $block->name;
    my $reqs  = get_requests($block);
    my $timeout = parse_time(scalar $block->timeout) // $Timeout;
    my $npipe = $block->pipelined_requests ? scalar @{ $block->pipelined_requests } : 0;
    my $need_array = $npipe || @$reqs > 1;

    my $idx = 0;
    for my $r (0 .. $#$reqs) {
        my $raw  = send_request($block, $reqs->[$r], $timeout);
        # HEAD responses have no body whatever their Content-Length says
        my @head = map { /^\s*HEAD\s/ ? 1 : 0 } $npipe
            ? @{ $block->pipelined_requests }
            : join '', map { $_->{value} } @{ $reqs->[$r] };
        my $count = $npipe || 1;
        for my $k (1 .. $count) {
            if (!defined $block->ignore_response) {
                my ($res, $raw_headers, $left) = parse_response($name, $raw, $head[$k - 1]);
                if (!$npipe && $left ne '') {
                    (my $shown = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after the response: \"$shown\"\n";
                }
                $raw = $left;
                check_error_code($block, $res, $idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $idx, $need_array);
                check_response_body($block, $res, $idx, $rep, $need_array);
            }
            # as the real one: the error log is also examined between responses
            if ($k < $count || $r < $#$reqs) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep);
            }
            $idx++;
        }
    }
    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
}

sub check_error_code {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $got  = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = indexed($name, $block->error_code_like, $idx, $need_array);
        like($got, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($got, indexed($name, $block->error_code, $idx, $need_array),
           "$name - status code ok");
    } else {
        is($got, 200, "$name - status code ok");
    }
}

sub check_response_headers {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = indexed($name, $block->raw_response_headers_like, $idx, $need_array);
        like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
    }
    if (defined $block->response_headers) {
        my $spec = indexed($name, $block->response_headers, $idx, $need_array);
        for (parse_header_spec($spec)) {
            my ($key, $val) = @$_;
            if (!defined $val) {
                unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            is(($res ? $res->header($key) : undef) // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $spec = indexed($name, $block->response_headers_like, $idx, $need_array);
        for (parse_header_spec($spec)) {
            my ($key, $pat) = @$_;
            like(($res ? $res->header($key) : undef) // '', qr/^$pat$/,
                 "$name - header $key like ok");
        }
    }
}

sub check_response_body {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name    = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $expected = indexed($name, $block->response_body, $idx, $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $expected = expand_env($expected, $name);
        }
        my $what = "(repeated req $rep, req $idx)";
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like $what");
        } else {
            my $cmp = $NoLongString ? \&is : \&Test::LongString::is_string;
            $cmp->($content, $expected, "$name - response_body - response is expected $what");
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat  = indexed($name, $block->${\"response_body_$type"}, $idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        (my $summary = $content // '') =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        my $cmp = $type eq 'like' ? \&like : \&unlike;
        $cmp->($content, qr/$pat/s, "$name - response_body_$type - response is expected ($summary)");
    }
}

# New error.log lines since the last look (all of them with $all or
# check_accum_error_log).
sub error_log_data {
    my $all = shift;
    sleep $Sleep * 3;    # nginx may log after the response (log phase)
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogPos, 0 unless $all || $CheckAccumErrLog;
    my @lines = <$in>;
    $ErrLogPos = tell $in unless $all || $CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub patterns {
    my $pats = shift;
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats] if ref $pats eq 'ARRAY';
    chomp $pats;
    return [split /\n+/, $pats];
}

sub matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub one_line {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub check_error_log {
    my ($block, $rep) = @_;
    my $name  = $block->name;
    my $lines = error_log_data();
    # [alert]/[crit]/[emerg] lines are warned about unless a pattern names them
    my %quiet;
    for my $sec (grep { defined } $block->error_log, $block->no_error_log) {
        for my $pat (@{ patterns($sec) }) {
            $quiet{$1} = 1 while !ref $pat && $pat =~ /\[(alert|crit|emerg)/g;
        }
    }

    if (defined(my $grep = $block->grep_error_log)) {
        $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = $expected->[$rep] if ref $expected eq 'ARRAY';
        $expected = expand_env($expected, $name);
        my $got = '';
        for (@$lines) {
            my $m = ref $grep ? (/$grep/ ? $& : undef)
                              : (index($_, $grep) >= 0 ? $grep : undef);
            $got .= "$m\n" if defined $m && $m !~ /\n/;
        }
        is_str($got, $expected, "$name - grep_error_log_out (req $rep)");
    }

    if (defined $block->error_log) {
        my $pats = patterns($block->error_log);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log (req $rep)");
                undef $pat;
            }
        }
        for my $pat (grep { defined } @$pats) {
            fail("$name - pattern \"$pat\" should match a line in error.log (req $rep)");
        }
    }

    if (defined $block->no_error_log) {
        my $pats = patterns($block->no_error_log);
        my %found;
        for my $i (0 .. $#$lines) {
            for my $pat (@$pats) {
                next unless matches($lines->[$i], $pat);
                $found{$pat} = 1;
                my @after = @$lines[$i + 1 .. min($i + 9, $#$lines)];
                fail("$name - pattern \"" . one_line($pat) . "\" should not match any line in"
                     . " error.log but matches line \"" . one_line($lines->[$i])
                     . "\" (req $rep)\n" . join '', @after);
            }
        }
        for my $pat (grep { !$found{$_} } @$pats) {
            pass("$name - pattern \"" . one_line($pat) . "\" does not match a line in error.log (req $rep)");
        }
    }

    for my $line (@$lines) {
        # Not in the real module: a crashed worker fails the block.
        if ($line =~ /exited on signal \d+/) {
            fail("$name - nginx crashed: " . one_line($line));
        } elsif ($line =~ /\[(alert|crit|emerg)\]/ && !$quiet{$1}) {
            warn "WARNING: $name - " . one_line($line) . "\n";
        }
    }
}

1;
