#!/bin/bash
# Proves that a connection survives its server's fork byte for byte: an accept-then-fork server, a pre-forking server, seeded schedules of a parent and child taking turns on one connection, and SIGKILLs during the handoff; each without viaudit (kernel TCP, which must pass) and then on an shm route at both ends.
#
# usage: fork.sh stream FORK_SERVER FORK_CLIENTS    (accept-then-fork, five variants)
#        fork.sh prefork FORK_SERVER FORK_CLIENTS   (pre-forked workers, two accept styles)
#        fork.sh sched FORK_SCHED                   (FORK_SCHED_RUNS schedules, default 50)
#        fork.sh kill FORK_SCHED                    (FORK_KILL_RUNS per victim, default 20)
#        fork.sh exec FORK_EXEC                     (a child execs: close-on-exec or not)
#        fork.sh share FORK_SHARE                   (parent and child write at once)
# (VIAUDIT_BUILD: the meson build directory.) Issue 5 items 3, 4 and 5; the programs are in
# fork/. The full run of the schedules: FORK_SCHED_RUNS=500 FORK_KILL_RUNS=200.
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"
# shellcheck source=faults/faults_lib.sh
. "$(dirname "$0")/faults/faults_lib.sh"

# --- THE HANDOFF CHECK -------------------------------------------------------------------------
# Under viaudit, a child that uses a connection its parent still holds takes it over, and logs
#   viaudit: conns: fd=N handoff epoch=K to pid=P (read|write) in=X out=Y us=Z
# At least one such line must appear for the accept-fork server and for the schedules (see
# fork_expect_handoff): a module without the fork handoff fails it. FORK_EXPECT_HANDOFF=0
# turns it into a note.
FORK_EXPECT_HANDOFF=${FORK_EXPECT_HANDOFF:-1}

fl_start_script "fork.sh stream|prefork|sched|kill|exec|share PROGRAMS..." "$@"
FORK_SCHED_RUNS=${FORK_SCHED_RUNS:-50}
FORK_KILL_RUNS=${FORK_KILL_RUNS:-20}
# fork_sched starts no run after this many seconds (a hang costs ~6 s): CI's 50 runs take ~3 s
# without viaudit; the limits grow with the number of runs.
fork_sched_limit=$((FORK_SCHED_RUNS > 50 ? FORK_SCHED_RUNS * 4 / 5 : 40))
fork_kill_limit=$((FORK_KILL_RUNS > 20 ? FORK_KILL_RUNS * 3 / 5 : 10))

# fork_modes: "plain" (no viaudit) and the shm policy, in that order.
fork_modes() {
	printf '%s\n' plain "$shm_policy"
}

fork_label() {
	if [[ $1 == plain ]]; then echo plain; else echo shm; fi
}

# fork_conns NAME: NAME's conns lines for connections (not listeners, not handoff reports).
fork_conns() {
	grep -E '^viaudit: conns: .* local=[^ ]+ peer=[^ ]+ transport=' "$VT_TMP/$1.log" || true
}

# fork_expect_conns_shm NAME COUNT WHAT: NAME logged COUNT connections, all on transport=shm.
fork_expect_conns_shm() {
	local lines total shm
	lines=$(fork_conns "$1")
	total=$(grep -c . <<<"$lines" || true)
	shm=$(grep -c ' transport=shm ' <<<"$lines" || true)
	if [[ $total == "$2" && $shm == "$2" ]]; then
		fl_pass "$1's $2 connection(s) on transport=shm ($3)"
	else
		fl_fail "$1 logged $total connection(s), $shm on shm, expected $2 on shm ($3): $(grep -v ' transport=shm ' <<<"$lines" | head -n 3)"
	fi
}

# fork_handoff_lines NAME: how many `handoff epoch=` lines NAME logged.
fork_handoff_lines() {
	grep -Ec '^viaudit: conns: .*handoff epoch=[0-9]+' "$VT_TMP/$1.log" || true
}

# fork_expect_handoff COUNT WHAT: THE HANDOFF CHECK (see the top of this file).
fork_expect_handoff() {
	local count=$1 what=$2
	if [[ $FORK_EXPECT_HANDOFF == 0 ]]; then
		echo "note: the handoff check is off (FORK_EXPECT_HANDOFF=0): $count handoff line(s) for $what"
	elif [[ $count -gt 0 ]]; then
		fl_pass "$count 'handoff epoch=' line(s) logged for $what"
	else
		fl_fail "no 'handoff epoch=' line logged for $what: the fork handoff did not run (FORK_EXPECT_HANDOFF=0 turns this check off)"
	fi
}

# fork_expect_no_leftovers: no process of this test is left, none holding viaudit's shared memory.
fork_expect_no_leftovers() {
	local pid comm fd what held=()
	for pid in $(for comm in fork_sched fork_server fork_clients; do pgrep -s 0 -x "$comm"; done); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
		what="${comm}[$pid]"
		if grep -qs 'memfd:viaudit' "/proc/$pid/maps"; then
			what+=" mapping memfd:viaudit"
		fi
		for fd in "/proc/$pid/fd/"*; do
			if [[ $(readlink "$fd" 2>/dev/null) == *memfd:viaudit* ]]; then
				what+=" holding a memfd:viaudit fd"
				break
			fi
		done
		held+=("$what")
	done
	if [[ ${#held[@]} == 0 ]]; then
		fl_pass "no process of the test is left, none holds memfd:viaudit"
	else
		fl_fail "processes of the test left: ${held[*]}"
	fi
}

# --- accept-then-fork --------------------------------------------------------------------------
# fork_server accept-fork: the parent accepts, forks a child per connection that serves the
# stream_check protocol, and closes its copy at once, after 50 ms, or once the child exited; the
# child may poll() before its first read (which rsocket's fork support does not survive). 12
# clients of 2 MiB each way, 4 at a time, so bytes are in flight when the parent forks.
scenario_stream() {
	local server=${programs[0]} clients=${programs[1]} n=12 bytes=$((2 << 20)) mode label
	local variant name handoffs=0 seed=100
	while read -r mode; do
		label=$(fork_label "$mode")
		for variant in close delay=50 keep "close --child-poll" "keep --child-poll"; do
			name=$label-${variant// --/-}
			name=${name//=/}
			seed=$((seed + 1))
			fl_section "accept-fork, $label: --parent $variant"
			# shellcheck disable=SC2086 # the variant is words
			fl_start "$name-server" "$mode" -- "$server" accept-fork "$VT_TMP/$name.port" "$n" \
				--parent $variant
			if fl_wait_port "$name-server" "$VT_TMP/$name.port"; then
				fl_run "$name-clients" "$mode" -- "$clients" "$FL_PORT" "$n" 4 "$bytes" "$seed"
				fl_wait "$name-server"
				fl_expect_status "$name-clients" 0 "every byte of every connection arrived"
				fl_expect_out "$name-clients" "clients: $n connections, 0 failed"
				fl_expect_status "$name-server" 0 "every child saw its client's stream intact"
				fl_expect_out "$name-server" "served $n connections, 0 failed"
				fl_expect_out "$name-server" "parent: 0 memfd:viaudit mapping\(s\) and 0 fd\(s\) after closing every copy .*" \
					"the parent's copies left no shared memory behind"
				fl_expect_no_crash "$name-server"
				fl_expect_no_crash "$name-clients"
				if [[ $mode == plain ]]; then
					fl_expect_no_viaudit_output "$name-server"
				else
					fl_expect_listening_shm "$name-server"
					fork_expect_conns_shm "$name-server" "$n" "the accepted connections"
					fork_expect_conns_shm "$name-clients" "$n" "the clients' connections"
					handoffs=$((handoffs + $(fork_handoff_lines "$name-server")))
				fi
			fi
			fl_end_section
		done
	done < <(fork_modes)
	fl_section "accept-fork under viaudit: the handoff"
	fork_expect_handoff "$handoffs" "the accept-fork children"
	fork_expect_no_leftovers
	fl_end_section
}

# --- pre-forked workers ------------------------------------------------------------------------
# fork_server prefork: 4 workers accept on the listening socket they inherited, with a blocking
# accept() or with poll() and a non-blocking accept(); none takes a second connection before
# every worker took one, so with 4 clients at a time every worker must accept (shm included).
scenario_prefork() {
	local server=${programs[0]} clients=${programs[1]} n=16 workers=4 bytes=$((1 << 20))
	local mode label style name seed=200
	while read -r mode; do
		label=$(fork_label "$mode")
		for style in blocking poll; do
			name=$label-$style
			seed=$((seed + 1))
			fl_section "prefork, $label: $workers workers, $style accept"
			fl_start "$name-server" "$mode" -- "$server" prefork "$workers" "$VT_TMP/$name.port" \
				"$n" --accept "$style"
			if fl_wait_port "$name-server" "$VT_TMP/$name.port"; then
				fl_run "$name-clients" "$mode" -- "$clients" "$FL_PORT" "$n" "$workers" "$bytes" "$seed"
				fl_wait "$name-server"
				fl_expect_status "$name-clients" 0 "every byte of every connection arrived"
				fl_expect_out "$name-clients" "clients: $n connections, 0 failed"
				fl_expect_status "$name-server" 0
				fl_expect_out "$name-server" "served $n connections, 0 failed"
				fl_expect_out "$name-server" "every worker accepted: yes \($workers workers\)"
				fl_expect_no_crash "$name-server"
				fl_expect_no_crash "$name-clients"
				grep -E '^worker [0-9]+ \(pid [0-9]+\): ' "$VT_TMP/$name-server.out" | sed 's/^/    /' || true
				if [[ $mode == plain ]]; then
					fl_expect_no_viaudit_output "$name-server"
				else
					fl_expect_listening_shm "$name-server"
					fork_expect_conns_shm "$name-server" "$n" "the workers' accepted connections"
					fork_expect_conns_shm "$name-clients" "$n" "the clients' connections"
				fi
			fi
			fl_end_section
		done
	done < <(fork_modes)
}

# --- seeded schedules --------------------------------------------------------------------------

# fork_sched_summary NAME: the failed seeds of a fork_sched run and why, for the log.
fork_sched_summary() {
	local failed
	failed=$(grep -E '^seed [0-9]+: FAIL' "$VT_TMP/$1.out" || true)
	[[ -z $failed ]] && return 0
	echo "    failed schedules (run one again with: fork_sched [--kill VICTIM] --verbose SEED):"
	# (head ends its pipe early: with pipefail, that is not a failure of the script)
	grep -E '^seed [0-9]+: (FAIL|  )' "$VT_TMP/$1.out" | head -n 80 | sed 's/^/    /' || true
	grep -E '^seed [0-9]+:   ' "$VT_TMP/$1.out" |
		sed -E 's/^seed [0-9]+: +//; s/[0-9]{2,}/N/g' | sort | uniq -c | sort -rn |
		head -n 20 | sed 's/^/    how often: /' || true
}

# fork_expect_sched_conns NAME: for every run of NAME, both ends logged its connection on shm.
fork_expect_sched_conns() {
	local name=$1 runs=0 missing=() local_port peer_port seed client server
	local -A shm=()
	# Each end logs "local=127.0.0.1:A peer=127.0.0.1:B transport=shm": remember "A B".
	while read -r local_port peer_port; do
		shm["$local_port $peer_port"]=1
	done < <(grep -oE ' local=127\.0\.0\.1:[0-9]+ peer=127\.0\.0\.1:[0-9]+ transport=shm ' \
		"$VT_TMP/$name.log" | sed -E 's/.*local=[^:]+:([0-9]+) peer=[^:]+:([0-9]+) .*/\1 \2/' || true)
	# Each run prints "seed N: ok conn=127.0.0.1:CLIENT->127.0.0.1:SERVER".
	while read -r seed client server; do
		runs=$((runs + 1))
		if [[ -z ${shm["$client $server"]:-} || -z ${shm["$server $client"]:-} ]]; then
			missing+=("seed $seed")
		fi
	done < <(sed -nE 's/^seed ([0-9]+): (ok|FAIL) conn=127\.0\.0\.1:([0-9]+)->127\.0\.0\.1:([0-9]+)$/\1 \3 \4/p' \
		"$VT_TMP/$name.out")
	if [[ $runs == 0 ]]; then
		fl_fail "$name printed no run"
	elif [[ ${#missing[@]} == 0 ]]; then
		fl_pass "all $runs runs of $name: both ends logged transport=shm"
	else
		fl_fail "${#missing[@]} run(s) of $name without transport=shm at both ends: ${missing[*]:0:10}"
	fi
}

# fork_sched_run NAME MODE LIMIT ARGS...: fork_sched ARGS in MODE; it must report 0 failed runs.
fork_sched_run() {
	local name=$1 mode=$2 limit=$3 runs
	shift 3
	runs=$(sed -nE 's/.*--runs ([0-9]+).*/\1/p' <<<"$*")
	FL_LIMIT=$((limit + 20)) fl_run "$name" "$mode" -- "${programs[0]}" "$@" --time-limit "$limit"
	fl_expect_status "$name" 0 "every schedule right"
	fl_expect_out "$name" "fork_sched: $runs runs of $runs from seed [0-9]+ \(kill: [a-z]+\) in [0-9.]+ s: 0 failed"
	fl_expect_no_crash "$name"
	if [[ $mode == plain ]]; then
		fl_expect_no_viaudit_output "$name"
	else
		fork_expect_sched_conns "$name"
	fi
	tail -n 1 "$VT_TMP/$name.out" | sed 's/^/    /'
	fork_sched_summary "$name"
}

# fork_sched: FORK_SCHED_RUNS schedules (seeds 1..N): turn 0, the fork with bytes in flight
# both ways, parent and child by turns, the bystander kept, closed, exited or killed.
scenario_sched() {
	local mode label handoffs=0
	while read -r mode; do
		label=$(fork_label "$mode")
		fl_section "seeded schedules, $label: $FORK_SCHED_RUNS runs"
		fork_sched_run "sched-$label" "$mode" "$fork_sched_limit" --runs "$FORK_SCHED_RUNS" --first-seed 1
		[[ $mode == plain ]] || handoffs=$(fork_handoff_lines "sched-$label")
		fl_end_section
	done < <(fork_modes)
	fl_section "seeded schedules under viaudit: the handoff"
	fork_expect_handoff "$handoffs" "the schedules"
	fork_expect_no_leftovers
	fl_end_section
}

# fork_sched --kill: the parent, the child or the peer SIGKILLed during the child's go: no hang,
# streams right up to where they end, ends by EOF/ECONNRESET/EPIPE, every close releasing its
# shared memory (checked by fork_sched in each process), and nothing left behind.
scenario_kill() {
	local mode label victim
	while read -r mode; do
		label=$(fork_label "$mode")
		for victim in parent child peer; do
			fl_section "SIGKILL of the $victim during the handoff, $label: $FORK_KILL_RUNS runs"
			fork_sched_run "kill-$victim-$label" "$mode" "$fork_kill_limit" --kill "$victim" --runs "$FORK_KILL_RUNS" \
				--first-seed 1000
			fl_end_section
		done
	done < <(fork_modes)
	fl_section "SIGKILL runs: nothing left behind"
	fork_expect_no_leftovers
	fl_end_section
}

# --- a child that execs -------------------------------------------------------------------------
# fork_exec: the server's child execs `sleep 2` without touching the connection; the parent
# sends 200000 bytes and closes. With close-on-exec the exec'd child does not hold the socket,
# so the client sees the EOF at once; without it the exec'd child holds the connection open and
# the EOF comes when it exits, as on TCP. Either way no handoff (the child never touched it).
scenario_exec() {
	local prog=${programs[0]} mode label cloexec name eof
	while read -r mode; do
		label=$(fork_label "$mode")
		for cloexec in 1 0; do
			name=$label-cloexec$cloexec
			fl_section "a child that execs, $label: close-on-exec $cloexec"
			fl_start "$name-server" "$mode" -- "$prog" server "$VT_TMP/$name.port" "$cloexec" 2
			if fl_wait_port "$name-server" "$VT_TMP/$name.port"; then
				fl_run "$name-client" "$mode" -- "$prog" client "$FL_PORT"
				fl_wait "$name-server"
				fl_expect_status "$name-client" 0 "every byte arrived, then the EOF"
				fl_expect_status "$name-server" 0
				eof=$(sed -nE 's/^client: bytes=200000 eof_ms=([0-9]+)$/\1/p' "$VT_TMP/$name-client.out")
				if [[ -z $eof ]]; then
					fl_fail "$name-client printed no EOF time: $(head -n 2 "$VT_TMP/$name-client.out")"
				elif [[ $cloexec == 1 && $eof -lt 1000 ]]; then
					fl_pass "EOF ${eof} ms after the last byte: the exec'd child did not hold the socket"
				elif [[ $cloexec == 0 && $eof -ge 1000 ]]; then
					fl_pass "EOF ${eof} ms after the last byte: the exec'd child held the socket until it exited"
				else
					fl_fail "EOF ${eof} ms after the last byte with close-on-exec $cloexec"
				fi
				if [[ $mode != plain ]]; then
					fork_expect_conns_shm "$name-server" 1 "the accepted connection"
					if [[ $(fork_handoff_lines "$name-server") == 0 ]]; then
						fl_pass "no handoff: the exec'd child never touched the connection"
					else
						fl_fail "a handoff ran although the child only exec'd"
					fi
				fi
			fi
			fl_end_section
		done
	done < <(fork_modes)
}

# --- parent and child writing at once ----------------------------------------------------------
# fork_share: after fork both processes send 20000 records of 64 B (one send() each) at the same
# time, then close. The peer must read every record whole, once, in each writer's order, then
# the EOF: kernel-like shared use. Under viaudit each change of user is a handoff.
scenario_share() {
	local prog=${programs[0]} mode label name records=20000
	while read -r mode; do
		label=$(fork_label "$mode")
		name=$label-share
		fl_section "parent and child writing at once, $label: $records records each"
		fl_start "$name-server" "$mode" -- "$prog" server "$VT_TMP/$name.port" "$records"
		if fl_wait_port "$name-server" "$VT_TMP/$name.port"; then
			fl_run "$name-client" "$mode" -- "$prog" client "$FL_PORT" "$records"
			fl_wait "$name-server"
			fl_expect_status "$name-client" 0 "every record whole, once, in each writer's order"
			fl_expect_out "$name-client" "client: parent=$records child=$records ok"
			fl_expect_status "$name-server" 0
			if [[ $mode != plain ]]; then
				fork_expect_conns_shm "$name-server" 1 "the accepted connection"
				# 1.28 MB each fills the 1 MiB ring: both must have written while the other held it.
				fork_expect_handoff "$(fork_handoff_lines "$name-server")" "the two writers"
			fi
		fi
		fl_end_section
	done < <(fork_modes)
}

case $scenario in
share) [[ ${#programs[@]} == 1 ]] || vt_die "usage: fork.sh share FORK_SHARE"; scenario_share ;;
exec) [[ ${#programs[@]} == 1 ]] || vt_die "usage: fork.sh exec FORK_EXEC"; scenario_exec ;;
stream) [[ ${#programs[@]} == 2 ]] || vt_die "usage: fork.sh stream FORK_SERVER FORK_CLIENTS"; scenario_stream ;;
prefork) [[ ${#programs[@]} == 2 ]] || vt_die "usage: fork.sh prefork FORK_SERVER FORK_CLIENTS"; scenario_prefork ;;
sched) [[ ${#programs[@]} == 1 ]] || vt_die "usage: fork.sh sched FORK_SCHED"; scenario_sched ;;
kill) [[ ${#programs[@]} == 1 ]] || vt_die "usage: fork.sh kill FORK_SCHED"; scenario_kill ;;
*) vt_die "unknown scenario $scenario" ;;
esac
fl_finish
