#!/bin/bash
# Proves that routed connections survive faults and hostile peers: a SIGKILLed peer, malformed door messages, 1000 connections at once, and garbage written into shared memory.
#
# usage: faults.sh sigkill PEER_KILL
#        faults.sh door STREAM_CHECK DOOR_HOSTILE
#        faults.sh many EPOLL_ECHO MANY_CONNS
#        faults.sh garbage STREAM_CHECK SHM_SCRIBBLE
# (VIAUDIT_BUILD: the meson build directory.) Issue 4 item 5; the programs are in faults/.
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"
# shellcheck source=faults/faults_lib.sh
. "$(dirname "$0")/faults/faults_lib.sh"

fl_start_script "faults.sh sigkill|door|many|garbage PROGRAMS..." "$@"

# --- peer SIGKILL ------------------------------------------------------------------------------
# One end SIGKILLs the other, then its blocked read must return EOF or ECONNRESET, or its write
# loop fail with EPIPE or ECONNRESET, within 1 s (peer_kill measures from the kill). Each pair
# runs without viaudit first, as a control of the test itself, then with both ends under it.
sigkill_pair() {
	local name=$1 mode=$2 server_role=$3 client_role=$4 survivor victim ms line
	fl_start "$name-server" "$mode" -- "${programs[0]}" server "$VT_TMP/$name.port" "$server_role"
	fl_wait_port "$name-server" "$VT_TMP/$name.port" || return 0
	fl_start "$name-client" "$mode" -- "${programs[0]}" client "$FL_PORT" "$client_role"
	fl_wait "$name-client"
	fl_wait "$name-server"
	if [[ $server_role == victim ]]; then
		victim=$name-server survivor=$name-client
	else
		victim=$name-client survivor=$name-server
	fi
	fl_expect_status "$victim" 137 "killed by SIGKILL"
	fl_expect_status "$survivor" 0 "its call failed the right way within 1 s"
	fl_expect_no_crash "$survivor"
	case ${server_role}${client_role} in
	*reader*) line=$(fl_out_line "$survivor" 'reader: read returned (0 \(EOF\)|-1 \(ECONNRESET\)) [0-9.]+ ms after the kill') ;;
	*) line=$(fl_out_line "$survivor" 'writer: write failed with (EPIPE|ECONNRESET) [0-9.]+ ms after the kill.*') ;;
	esac
	if [[ -z $line ]]; then
		fl_fail "$survivor did not report EOF/ECONNRESET (read) or EPIPE/ECONNRESET (write)"
	else
		ms=$(sed -E 's/.* ([0-9.]+) ms after the kill.*/\1/' <<<"$line")
		if awk -v ms="$ms" 'BEGIN { exit !(ms <= 1000) }'; then
			fl_pass "$survivor: $line (<= 1000 ms)"
		else
			fl_fail "$survivor took $ms ms (> 1000): $line"
		fi
	fi
	if [[ $mode != plain ]]; then
		fl_expect_conns_shm "$name-server" 1 "the accepted connection"
		fl_expect_conns_shm "$name-client" 1 "the connection"
	fi
}

scenario_sigkill() {
	local mode label pair
	for mode in plain "$shm_policy"; do
		label=shm
		[[ $mode == plain ]] && label=plain
		for pair in "server-killed:victim:reader" "client-killed:reader:victim" \
			"server-killed-write:victim:writer" "client-killed-write:writer:victim"; do
			IFS=: read -r name server_role client_role <<<"$pair"
			fl_section "SIGKILL $label: $name (server $server_role, client $client_role)"
			sigkill_pair "$label-$name" "$mode" "$server_role" "$client_role"
			fl_end_section
		done
	done
}

# --- hostile door messages ---------------------------------------------------------------------
# door_hostile (not under viaudit) sends each malformed request to the door of a routed
# stream_check server and follows it with a plain TCP stream, which must work; then a real
# routed client must still get shm.
scenario_door() {
	local stream_check=${programs[0]} door_hostile=${programs[1]} bytes=$((4 << 20)) cases served
	fl_section "hostile door messages to a routed stream_check server"
	fl_start server "$shm_policy" -- "$stream_check" server "$VT_TMP/server.port" 0
	if fl_wait_port server "$VT_TMP/server.port"; then
		fl_run hostile plain -- "$door_hostile" "$FL_PORT"
		case ${FL_STATUS[hostile]} in
		0) fl_pass "door_hostile: $(tail -n 1 "$VT_TMP/hostile.out"), every TCP stream after them intact" ;;
		77) fl_pending "the listener has a door for door_hostile to attack (door_hostile: $(grep -m 1 '^no door' "$VT_TMP/hostile.out" || true))" ;;
		*) fl_fail "door_hostile exited ${FL_STATUS[hostile]}: $(grep -E '^FAIL|tcp: [^o]|gone|not run' "$VT_TMP/hostile.out" | head -n 5)" ;;
		esac
		cases=$(grep -c '^case ' "$VT_TMP/hostile.out" || true)
		sed 's/^/    /' "$VT_TMP/hostile.out"

		fl_run client "$shm_policy" -- "$stream_check" client "$FL_PORT" "$bytes" 77
		fl_expect_status client 0 "the listener kept serving"
		fl_expect_out client "client: ok sent=$bytes received=$bytes"
		fl_expect_conns_shm client 1 "a real client after the hostile ones"

		if kill -0 "$FL_SERVER_PID" 2>/dev/null; then
			fl_pass "the server is still running"
		else
			fl_fail "the server died"
		fi
		kill -TERM "${FL_PID[server]}" 2>/dev/null || true
		fl_wait server
		served=$((cases + 1))
		fl_expect_status server 0 "every connection it served was right"
		fl_expect_out server "served $served connections, 0 failed"
		fl_expect_no_crash server
		fl_expect_listening_shm server
		# The hostile cases' connections are plain TCP; the real client's is shm.
		if [[ $cases -gt 0 ]]; then
			fl_expect_conns_lines server "$served" 1
		fi
		if grep -qv '^viaudit: ' "$VT_TMP/server.err"; then
			echo "note: the server's stderr (refusals are allowed):"
			grep -v '^viaudit: ' "$VT_TMP/server.err" | head -n 30 | sed 's/^/    /'
		fi
	fi
	fl_end_section
}

# --- 1000 concurrent connections ---------------------------------------------------------------
many_check_peak() {
	local name=$1 n=$2 line peak
	line=$(fl_out_line "$name" '(client|server): [0-9]+ connections open after a round trip each: .*')
	peak=$(sed -E 's/.*memfd mappings ([0-9]+).*/\1/' <<<"$line")
	if [[ -z $line ]]; then
		fl_fail "$name did not report its open connections"
	elif fl_conns "$name" | grep -q ' transport=shm '; then
		if [[ $peak -ge $n ]]; then
			fl_pass "$name had $peak memfd mappings with $n connections open"
		else
			fl_fail "$name had $peak memfd mappings with $n connections open, expected one for each"
		fi
	else
		fl_pending "$name has a memfd mapping for each of its $n open connections (it has $peak)"
	fi
}

scenario_many() {
	local epoll_echo=${programs[0]} many_conns=${programs[1]} n=1000 mode label
	for mode in plain "$shm_policy"; do
		label=shm
		[[ $mode == plain ]] && label=plain
		fl_section "$n concurrent connections, $label"
		fl_start "$label-server" "$mode" -- "$epoll_echo" "$VT_TMP/$label.port" "$n"
		if fl_wait_port "$label-server" "$VT_TMP/$label.port"; then
			fl_run "$label-client" "$mode" -- "$many_conns" "$FL_PORT" "$n"
			fl_wait "$label-server"
			fl_expect_status "$label-client" 0
			fl_expect_out "$label-client" "client: $n round trips done"
			fl_expect_out "$label-client" "client: clean after closing $n connections: .*" \
				"no fd or memfd mapping left"
			fl_expect_status "$label-server" 0
			fl_expect_out "$label-server" "server: clean after $n connections: .*" \
				"no fd or memfd mapping left"
			fl_expect_no_crash "$label-client"
			fl_expect_no_crash "$label-server"
			if [[ $mode != plain ]]; then
				fl_expect_conns_shm "$label-client" "$n" "every connection"
				fl_expect_conns_shm "$label-server" "$n" "every accepted connection"
				many_check_peak "$label-client" "$n"
				many_check_peak "$label-server" "$n"
			fi
			grep -E '^(client|server): (baseline|[0-9]+ connections open|clean|LEAK)' \
				"$VT_TMP/$label-client.out" "$VT_TMP/$label-server.out" |
				sed "s|^$VT_TMP/||; s/^/    /" || true
		fi
		fl_end_section
	done
}

# --- garbage in shared memory ------------------------------------------------------------------
# shm_scribble connects with shm, sends half a stream, then writes random values over the control
# page's counters while the server reads: the server must see ECONNRESET or EOF on that
# connection, never a crash, a hang or bytes that were not sent, and serve the next client.
scenario_garbage() {
	local stream_check=${programs[0]} scribble=${programs[1]} bytes=$((8 << 20)) line
	fl_section "a client scribbles over the shared control page"
	fl_start server "$shm_policy" -- "$stream_check" server "$VT_TMP/server.port" 2
	if fl_wait_port server "$VT_TMP/server.port"; then
		fl_run scribble "$shm_policy" -- "$scribble" "$FL_PORT" "$bytes" 11
		case ${FL_STATUS[scribble]} in
		0) fl_pass "shm_scribble: $(grep -m 1 'wrote the counters' "$VT_TMP/scribble.out")" ;;
		77) fl_pending "shm_scribble finds its connection's shared memory to scribble on" ;;
		*) fl_fail "shm_scribble exited ${FL_STATUS[scribble]}" ;;
		esac
		sed 's/^/    /' "$VT_TMP/scribble.out"
		fl_expect_no_crash scribble
		fl_expect_conns_shm scribble 1 "the scribbler's connection"

		fl_run client "$shm_policy" -- "$stream_check" client "$FL_PORT" "$bytes" 12
		fl_expect_status client 0 "the server kept serving"
		fl_expect_out client "client: ok sent=$bytes received=$bytes"
		fl_expect_conns_shm client 1 "the next client"

		fl_wait server
		fl_expect_status server 3 "it served both, and the first one failed"
		fl_expect_no_crash server
		line=$(fl_out_line server 'conn 1: .*')
		if [[ $line =~ ^conn\ 1:\ (error\ (ECONNRESET|EPIPE)\ in\ (read|write)|eof\ at\ offset|no\ header:\ eof) ]]; then
			fl_pass "the scribbled connection ended cleanly on the server: $line"
		else
			fl_fail "the scribbled connection did not end with ECONNRESET or EOF on the server: ${line:-no line}"
		fi
		fl_expect_out server "conn 2: ok sent=$bytes received=$bytes" "the next client was served"
		fl_expect_conns_shm server 2 "both accepted connections"
	fi
	fl_end_section
}

case $scenario in
sigkill) [[ ${#programs[@]} == 1 ]] || vt_die "usage: faults.sh sigkill PEER_KILL"; scenario_sigkill ;;
door) [[ ${#programs[@]} == 2 ]] || vt_die "usage: faults.sh door STREAM_CHECK DOOR_HOSTILE"; scenario_door ;;
many) [[ ${#programs[@]} == 2 ]] || vt_die "usage: faults.sh many EPOLL_ECHO MANY_CONNS"; scenario_many ;;
garbage) [[ ${#programs[@]} == 2 ]] || vt_die "usage: faults.sh garbage STREAM_CHECK SHM_SCRIBBLE"; scenario_garbage ;;
*) vt_die "unknown scenario $scenario" ;;
esac
fl_finish
