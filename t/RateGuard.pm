# What every rate_guard suite shares, on top of Test::Nginx::Socket (CPAN's
# or t/lib's): the module loaded in every block, and loopback ports that
# stand for a Redis that is down or that hangs.
package RateGuard;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;

our @EXPORT = qw(load_module_in_every_block listen_closed_port listen_blackhole_port);

# Every block gets `load_module` unless it has a --- main_config of its own;
# `more` (optional) fills in further defaults of a suite.
sub load_module_in_every_block {
    my $more = shift;
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        if (!defined $block->main_config) {
            $block->set_value("main_config", "load_module $ENV{TEST_NGINX_RATE_GUARD_MODULE};");
        }
        $more->($block) if $more;
    });
}

# $TEST_NGINX_CLOSED_PORT: a loopback port with nothing behind it (Redis down).
sub listen_closed_port {
    my $socket = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp')
        or die "cannot listen: $!";
    $ENV{TEST_NGINX_CLOSED_PORT} = $socket->sockport;
    close $socket;
}

# $TEST_NGINX_BLACKHOLE_PORT: a listener that completes TCP handshakes but
# never answers (a Redis that accepts the connection and then hangs). It
# lives as long as the suite.
my $blackhole;
sub listen_blackhole_port {
    $blackhole = IO::Socket::INET->new(Listen => 128, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp')
        or die "cannot listen: $!";
    $ENV{TEST_NGINX_BLACKHOLE_PORT} = $blackhole->sockport;
}

1;
