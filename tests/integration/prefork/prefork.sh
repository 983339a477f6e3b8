#!/bin/bash
# Proves that every worker of a pre-forked server accepts shm connections: workers sharing one listening socket (and so one door) pair every connection with its own door request, every byte checked.
#
# usage: prefork.sh PREFORK_SERVER PREFORK_CLIENT   (VIAUDIT_BUILD: the meson build directory)
# Issue 5 item 4. PREFORK_WORKERS, PREFORK_CONNS, PREFORK_PARALLEL and PREFORK_MAX_BYTES change
# the run's size (defaults 4, 200, 16 and 262144).
set -euo pipefail
# shellcheck source=../../lib/viaudit_test.sh
. "$(dirname "$0")/../../lib/viaudit_test.sh"
# shellcheck source=../faults/faults_lib.sh
. "$(dirname "$0")/../faults/faults_lib.sh"

[[ $# == 2 ]] || vt_die "usage: prefork.sh PREFORK_SERVER PREFORK_CLIENT"
server=$(realpath "$1")
client=$(realpath "$2")
workers=${PREFORK_WORKERS:-4}
conns=${PREFORK_CONNS:-200}
parallel=${PREFORK_PARALLEL:-16}
max_bytes=${PREFORK_MAX_BYTES:-262144}
# shellcheck disable=SC2034 # read by faults_lib.sh's fl_start
FL_LIMIT=150
fl_init

shm_policy=$(fl_policy shm.policy shm)

# run NAME MODE SERVER_POLICY CLIENT_POLICY SEED: the server with $workers workers in MODE and
# $conns connections from $parallel client processes; both ends must see every byte right.
# Returns 1 when the server never came up.
run() {
	local name=$1 mode=$2 server_policy=$3 client_policy=$4 seed=$5
	fl_start "$name-server" "$server_policy" -- "$server" "$VT_TMP/$name.port" "$workers" "$conns" "$mode"
	fl_wait_port "$name-server" "$VT_TMP/$name.port" || return 1
	fl_run "$name-client" "$client_policy" -- "$client" "$FL_PORT" "$conns" "$parallel" "$max_bytes" "$seed"
	fl_wait "$name-server"
	fl_expect_status "$name-client" 0 "every connection of the clients was right"
	fl_expect_out "$name-client" "clients: $conns connections, 0 failed"
	fl_expect_status "$name-server" 0 "every connection the workers served was right"
	fl_expect_out "$name-server" "served $conns connections, 0 failed, by [0-9]+ workers"
	fl_expect_no_crash "$name-server"
	fl_expect_no_crash "$name-client"
	local busy
	busy=$(fl_out_line "$name-server" "served .* by [0-9]+ workers" | sed -E 's/.* by ([0-9]+) workers/\1/')
	if [[ $workers -gt 1 && ${busy:-0} -lt 2 ]]; then
		fl_fail "only ${busy:-0} of $workers workers served a connection: the socket was not shared in practice"
	else
		fl_pass "${busy:-0} of $workers workers served connections"
	fi
}

# expect_all_shm NAME WHAT: NAME's $conns connections are all on shm, and none moved to tcp later
# (a connector that got no answer from the worker that accepted it logs a `moved` line).
expect_all_shm() {
	local name=$1 what=$2 lines shm moved
	lines=$(grep -E '^viaudit: conns: ' "$VT_TMP/$name.log" | grep -Ev ' listening ' || true)
	shm=$(grep -Ec ' transport=shm ' <<<"$lines" || true)
	moved=$(grep -Ec ' moved to transport=tcp ' <<<"$lines" || true)
	echo "    $name: $shm of $conns connections on shm, $moved moved to tcp ($what)"
	if [[ $shm == "$conns" && $moved == 0 && $(grep -c . <<<"$lines" || true) == "$conns" ]]; then
		fl_pass "$name's $conns connections all on transport=shm ($what)"
	else
		fl_fail "$name: $shm of $conns connections on shm, $moved moved to tcp ($what): $(grep -v ' transport=shm ' <<<"$lines" | head -n 3)"
	fi
}

fl_section "control: no viaudit, $workers workers blocking in accept"
if run control accept plain plain 1; then
	fl_expect_no_viaudit_output control-server
	fl_expect_no_viaudit_output control-client
fi
fl_end_section

seed=2
for mode in accept poll parent; do
	fl_section "both under viaudit (shm), $workers workers, mode $mode"
	if run "$mode" "$mode" "$shm_policy" "$shm_policy" "$seed"; then
		fl_expect_listening_shm "$mode-server"
		expect_all_shm "$mode-server" "accepted by the workers"
		expect_all_shm "$mode-client" "the connectors"
	fi
	fl_end_section
	seed=$((seed + 1))
done

fl_finish
