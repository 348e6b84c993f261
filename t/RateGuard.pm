# What every rate_guard suite shares, on top of Test::Nginx::Socket (CPAN's
# or t/lib's): the module loaded in every block, loopback ports that stand
# for a Redis that is down or that hangs, and two sections of our own that
# act on Redis just before a block's requests (both runners call block
# preprocessors right before they run the block; a block without --- config
# goes on with the running nginx, so they can act between two blocks'
# requests):
#
#   --- rate_guard_ctl
#   ban t080_1 alice 1h          each line: the arguments of one run of
#   sleep 1.1                    rate-guard-ctl (--redis added), in order;
#                                `sleep SECONDS` waits
#   --- redis_later
#   0.2 CLIENT PAUSE 1500 ALL    each line: a redis-cli command run in the
#                                background SECONDS after the block starts
package RateGuard;

use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use IO::Socket::INET;
use Time::HiRes ();

our @EXPORT = qw(load_module_in_every_block listen_closed_port listen_blackhole_port
                 rate_guard_ctl);

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
        # (a section's accessor exists only when some block of the file has it)
        if ($block->can('redis_later') && defined(my $later = $block->redis_later)) {
            run_redis_later($later);
        }
        if ($block->can('rate_guard_ctl') && defined(my $ctl = $block->rate_guard_ctl)) {
            for my $line (split /\n/, $ctl) {
                next if $line =~ /^\s*(#|$)/;
                if ($line =~ /^\s*sleep\s+([\d.]+)\s*$/) {
                    Time::HiRes::sleep($1);
                } else {
                    rate_guard_ctl(split ' ', $line);
                }
            }
        }
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

sub redis_cli_command {
    return "$ENV{TEST_NGINX_REDIS_CLI} -h 127.0.0.1 -p $ENV{TEST_NGINX_REDIS_PORT}";
}

sub run_redis_later {
    for my $line (split /\n/, shift) {
        next if $line =~ /^\s*(#|$)/;
        my ($after, $command) = $line =~ /^\s*([\d.]+)\s+(.+?)\s*$/
            or die "--- redis_later: \"$line\" is not \"SECONDS COMMAND\"\n";
        # the shell puts it in the background: nothing to reap, no fork of perl
        system("(sleep $after; " . redis_cli_command() . " $command) > /dev/null 2>&1 &") == 0
            or die "--- redis_later: cannot start \"$line\"\n";
    }
}

# rate_guard_ctl(ARGS...): runs the repository's tools/rate-guard-ctl (or
# $RATE_GUARD_CTL) with ARGS against the suites' Redis; dies when it fails.
sub rate_guard_ctl {
    my @args = @_;
    my $ctl = $ENV{RATE_GUARD_CTL}
        || File::Spec->rel2abs(dirname(dirname(__FILE__))) . '/tools/rate-guard-ctl';
    die "rate-guard-ctl not found at $ctl (set RATE_GUARD_CTL)\n" unless -x $ctl;
    my @cmd = ($ctl, '--redis', "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}", @args);
    my $out = `@{[ join ' ', map { shell_quote($_) } @cmd ]} 2>&1`;
    die "rate-guard-ctl @args failed ($?): $out" if $? != 0;
    return $out;
}

sub shell_quote {
    (my $s = shift) =~ s/'/'\\''/g;
    return "'$s'";
}

1;

