#!/usr/bin/env bash
# sockperf under viaudit (issue 4 item 6): ping-pong and throughput complete against a sockperf
# server, report their figures, and the client's connections are carried by shm at both ends.
# Usage: sockperf.sh VIAUDIT   (VIAUDIT_BUILD set by meson; installs sockperf when missing)
set -euo pipefail
. "$(dirname "$0")/../lib/viaudit_test.sh"
. "$(dirname "$0")/../lib/real_programs.sh"
vt_init
rp_init "$1"
rp_require sockperf sockperf

# sockperf colours its output; the checks read it without the escape sequences.
rp_plain_output() {
	sed 's/\x1b\[[0-9;]*m//g' "$VT_OUT" "$VT_ERR" >"$VT_TMP/$VT_RUN_NAME.text"
	VT_OUT="$VT_TMP/$VT_RUN_NAME.text"
}

rp_start_server sockperf -- sockperf server --tcp -i 127.0.0.1 -p @PORT
port=$RP_PORT

# sockperf sizes its table of samples for a message rate it assumes; at --mps=max over shm
# the round trips outrun it ("ERROR: _seqN > m_maxSequenceNo"), so the rate is capped at
# 200000 round trips a second, far above what kernel TCP reaches here.
rp_run ping-pong "$VT_TMP/ping-pong.conns" -- \
	sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -t 3 -m 64 --mps=200000
rp_plain_output
vt_expect_status 0
vt_expect_stdout 'sockperf: Summary: Latency is [0-9.]+ usec'
vt_expect_stdout 'sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0'
vt_expect_stdout 'sockperf: ---> percentile 99\.000 = +[0-9.]+'
rp_expect_shm "$VT_TMP/ping-pong.conns" "$RP_SERVER_LOG" "$port"
vt_end_run

rp_run throughput "$VT_TMP/throughput.conns" -- \
	sockperf throughput --tcp -i 127.0.0.1 -p "$port" -t 3 -m 1024
rp_plain_output
vt_expect_status 0
vt_expect_stdout 'sockperf: Summary: Message Rate is [0-9]+ \[msg/sec\]'
vt_expect_stdout 'sockperf: Summary: BandWidth is [0-9.]+ MBps \([0-9.]+ Mbps\)'
rp_expect_shm "$VT_TMP/throughput.conns" "$RP_SERVER_LOG" "$port"
vt_end_run

vt_begin_checks server "the sockperf server under viaudit served both clients"
if ! kill -0 "$RP_SERVER_PID" 2>/dev/null; then
	vt_fail "the server exited before it was stopped: $(sed 's/\x1b\[[0-9;]*m//g' "$RP_SERVER_OUT" | tail -n 5)"
fi
rp_stop_server sockperf
# sockperf does not catch SIGTERM: 143 is its normal end here.
[[ "$RP_SERVER_STATUS" == 143 || "$RP_SERVER_STATUS" == 0 ]] ||
	vt_fail "the server ended with status $RP_SERVER_STATUS (crashed, or needed SIGKILL)"
grep -Eq "^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:$port listening transport=" \
	"$RP_SERVER_LOG" || vt_fail "no conns line for the listening socket"
vt_end_run

rp_finish
