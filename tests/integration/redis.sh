#!/usr/bin/env bash
# redis-server and redis-benchmark under viaudit (issue 4 item 6): GET and SET with 1 and 50
# clients complete without an error, and every connection is carried by shm at both ends.
# Usage: redis.sh VIAUDIT   (VIAUDIT_BUILD set by meson; installs redis when missing)
set -euo pipefail
. "$(dirname "$0")/../lib/viaudit_test.sh"
. "$(dirname "$0")/../lib/real_programs.sh"
vt_init
rp_init "$1"
rp_require redis-server redis-server
rp_require redis-tools redis-benchmark

rp_start_server redis -- redis-server --port @PORT --bind 127.0.0.1 --save '' \
	--appendonly no --dir "$VT_TMP"
port=$RP_PORT

# redis-benchmark -q rewrites its progress line with carriage returns; the checks read lines.
rp_split_lines() {
	tr '\r' '\n' <"$VT_OUT" >"$VT_TMP/$VT_RUN_NAME.lines"
	VT_OUT="$VT_TMP/$VT_RUN_NAME.lines"
}

for clients in 1 50; do
	rp_run "benchmark-c$clients" "$VT_TMP/c$clients.conns" -- \
		redis-benchmark -h 127.0.0.1 -p "$port" -t get,set -n 20000 -q -c "$clients"
	rp_split_lines
	vt_expect_status 0
	vt_expect_stdout ' *SET: [0-9.]+ requests per second.*'
	vt_expect_stdout ' *GET: [0-9.]+ requests per second.*'
	if grep -Eiv '^viaudit: ' "$VT_OUT" "$VT_ERR" | grep -Eiq 'error|reset|refused|broken'; then
		vt_fail "redis-benchmark printed an error"
	fi
	rp_expect_shm "$VT_TMP/c$clients.conns" "$RP_SERVER_LOG" "$port"
	connections=$(grep -Ec "^viaudit: conns: [^ ]+ fd=[0-9]+ local=[^ ]+ peer=127\\.0\\.0\\.1:$port " \
		"$VT_TMP/c$clients.conns" || true)
	[[ $connections -ge $clients ]] ||
		vt_fail "$connections connection(s) in the conns log, expected at least $clients"
	vt_end_run
done

vt_begin_checks server "redis-server under viaudit served both runs and shuts down cleanly"
if ! kill -0 "$RP_SERVER_PID" 2>/dev/null; then
	vt_fail "the server exited before it was stopped: $(tail -n 5 "$RP_SERVER_OUT")"
fi
rp_stop_server redis
# redis-server catches SIGTERM, shuts down and exits 0.
[[ "$RP_SERVER_STATUS" == 0 ]] || vt_fail "the server ended with status $RP_SERVER_STATUS"
grep -q 'Ready to accept connections' "$RP_SERVER_OUT" || vt_fail "the server never said it was ready"
grep -q 'ready to exit, bye bye' "$RP_SERVER_OUT" || vt_fail "the server did not shut down cleanly"
vt_end_run

rp_finish
