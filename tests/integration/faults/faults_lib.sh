# Bash functions for ../fallback.sh and ../faults.sh: programs run in the background under a time
# limit, checks on their output and `viaudit: conns:` lines, and checks that must wait for the shm
# transport. Source ../../lib/viaudit_test.sh first.
#
#   fl_init                               # vt_init, and stop every started process on exit
#   fl_section TITLE                      # a group of checks; its processes' output is shown if one fails
#   fl_start NAME MODE -- PROG ARGS...    # MODE: plain, or a policy file (run under LD_AUDIT)
#   fl_wait_port NAME FILE                # sets FL_PORT and FL_SERVER_PID from "PORT PID" in FILE
#   fl_wait NAME                          # its exit status in FL_STATUS[NAME]
#   fl_expect_status / fl_expect_out / fl_expect_no_crash / fl_expect_conns_* ...
#   fl_end_section; fl_finish             # exit 0, or 1 when a check failed
#
# A check that needs the shm transport fails when it does not hold (fl_pending): the
# transport is built, so its absence is a regression, not a reason to skip.
# shellcheck shell=bash

FL_LIMIT=${FL_LIMIT:-60}
FL_SECTION=
FL_SECTION_FAILED=0
FL_SECTION_NAMES=()
FL_PORT=
FL_SERVER_PID=
declare -A FL_PID=() FL_STATUS=() FL_COMMAND=()

# Stops every process started here that is still running (the `timeout` wrapper passes it on).
fl_cleanup() {
	local name
	for name in "${!FL_PID[@]}"; do
		kill "${FL_PID[$name]}" 2>/dev/null || true
		wait "${FL_PID[$name]}" 2>/dev/null || true
	done
}

fl_init() {
	vt_init
	trap 'fl_cleanup; vt_cleanup' EXIT
}

# fl_start_script USAGE ARGS...: the common start of a scenario script: checks that ARGS has a
# scenario and at least one program (else dies with USAGE), sets `scenario` and `programs`
# (absolute paths), starts the test (fl_init) and writes the shm policy (`shm_policy`).
fl_start_script() {
	local usage=$1 program
	shift
	[[ $# -ge 2 ]] || vt_die "usage: $usage"
	scenario=$1
	shift
	programs=()
	for program in "$@"; do
		programs+=("$(realpath "$program")")
	done
	fl_init
	shm_policy=$(fl_policy shm.policy shm)
}

# fl_policy NAME TRANSPORT: a policy routing loopback TCP of every object to TRANSPORT; prints its path.
fl_policy() {
	vt_write_policy "$1" <<POLICY
# Every object's loopback TCP goes to $2.
route * tcp 127.0.0.0/8:* $2
route * * * kernel
POLICY
}

fl_section() {
	FL_SECTION=$1
	FL_SECTION_FAILED=0
	FL_SECTION_NAMES=()
	echo "=== $FL_SECTION"
}

fl_fail() {
	echo "FAIL [$FL_SECTION]: $*"
	FL_SECTION_FAILED=1
	VT_FAILURES=$((VT_FAILURES + 1))
}

fl_pass() {
	echo "ok: $*"
}

# fl_pending WHAT: WHAT needs the shm transport, which the module has: its absence (the old
# "shm not available yet" fallback, no door, no mapping) is a failure, never a skip.
fl_pending() {
	fl_fail "expected: $* (the shm transport is built, so this must hold)"
}

# fl_start NAME MODE [VAR=VALUE...] -- PROG ARGS...: starts PROG in the background under timeout.
fl_start() {
	local name=$1 mode=$2 assignments=()
	shift 2
	vt_split_assignments "$@"
	assignments=("${VT_ASSIGNMENTS[@]}")
	set -- "${VT_COMMAND[@]}"
	FL_SECTION_NAMES+=("$name")
	if [[ $mode == plain ]]; then
		FL_COMMAND[$name]="${assignments[*]} $*"
		timeout -k 5 "$FL_LIMIT" env -u LD_AUDIT "${assignments[@]}" "$@" \
			>"$VT_TMP/$name.out" 2>"$VT_TMP/$name.err" &
	else
		FL_COMMAND[$name]="LD_AUDIT=$VT_MODULE VIAUDIT_POLICY=$mode VIAUDIT_LOG=conns ${assignments[*]} $*"
		timeout -k 5 "$FL_LIMIT" env LD_AUDIT="$VT_MODULE" VIAUDIT_POLICY="$mode" \
			VIAUDIT_LOG=conns "${assignments[@]}" "$@" \
			>"$VT_TMP/$name.out" 2>"$VT_TMP/$name.err" &
	fi
	FL_PID[$name]=$!
	echo "--- $name: ${FL_COMMAND[$name]}"
}

# fl_wait NAME: waits for NAME; sets FL_STATUS[NAME] and writes its `viaudit:` lines to NAME.log.
fl_wait() {
	local name=$1 status=0
	wait "${FL_PID[$name]}" || status=$?
	unset "FL_PID[$name]"
	FL_STATUS[$name]=$status
	grep '^viaudit: ' "$VT_TMP/$name.err" >"$VT_TMP/$name.log" || true
	[[ $status != 124 ]] || fl_fail "$name timed out after $FL_LIMIT s"
}

# fl_run NAME MODE [VAR=VALUE...] -- PROG ARGS...: fl_start, then fl_wait.
fl_run() {
	fl_start "$@"
	fl_wait "$1"
}

# fl_wait_port NAME FILE: waits up to 10 s for NAME to write "PORT PID" to FILE, and sets
# FL_PORT and FL_SERVER_PID (for the callers). Returns 1 if it did not.
fl_wait_port() {
	local name=$1 file=$2 tries
	for ((tries = 0; tries < 200; tries++)); do
		if [[ -s $file ]]; then
			# shellcheck disable=SC2034 # read by the scripts that source this file
			read -r FL_PORT FL_SERVER_PID <"$file"
			return 0
		fi
		if ! kill -0 "${FL_PID[$name]}" 2>/dev/null; then
			fl_wait "$name"
			fl_fail "$name exited (status ${FL_STATUS[$name]}) before writing its port"
			return 1
		fi
		sleep 0.05
	done
	fl_fail "$name wrote no port within 10 s"
	return 1
}

# fl_expect_status NAME N [WHY]
fl_expect_status() {
	if [[ ${FL_STATUS[$1]} == "$2" ]]; then
		fl_pass "$1 exited $2${3:+ ($3)}"
	else
		fl_fail "$1 exited ${FL_STATUS[$1]}, expected $2${3:+ ($3)}"
	fi
}

# fl_expect_out NAME REGEX [WHY]: a whole stdout line of NAME matches REGEX.
fl_expect_out() {
	if grep -Eqx -- "$2" "$VT_TMP/$1.out"; then
		fl_pass "$1 printed /$2/${3:+ ($3)}"
	else
		fl_fail "$1 printed no line matching /$2/${3:+ ($3)}"
	fi
}

# fl_out_line NAME REGEX: the first stdout line of NAME that matches REGEX (maybe empty).
fl_out_line() {
	grep -Ex -m 1 -- "$2" "$VT_TMP/$1.out" || true
}

# fl_expect_no_crash NAME: not ended by a signal, and no sign of a crash on stderr.
fl_expect_no_crash() {
	local status=${FL_STATUS[$1]} hits
	if [[ $status -ge 128 && $status != 124 ]]; then
		fl_fail "$1 was killed by signal $((status - 128))"
	fi
	hits=$(grep -Ei 'segmentation fault|core dumped|AddressSanitizer|UndefinedBehaviorSanitizer|stack smashing|double free|corrupted|abort|assertion .* failed|bus error' \
		"$VT_TMP/$1.err" || true)
	if [[ -n $hits ]]; then
		fl_fail "$1's stderr shows a crash: $hits"
	else
		fl_pass "$1 did not crash"
	fi
}

# fl_expect_no_viaudit_output NAME: a plain run printed no `viaudit:` line.
fl_expect_no_viaudit_output() {
	if [[ -s $VT_TMP/$1.log ]]; then
		fl_fail "$1 ran without viaudit but printed viaudit lines"
	else
		fl_pass "$1 ran without viaudit"
	fi
}

# fl_conns NAME: NAME's conns lines for connections (listening sockets left out).
fl_conns() {
	grep -E '^viaudit: conns: ' "$VT_TMP/$1.log" | grep -Ev ' listening | handoff | handed over' || true
}

# fl_expect_conns_shm NAME COUNT WHAT: NAME logged COUNT connections, all on transport=shm.
fl_expect_conns_shm() {
	local name=$1 count=$2 what=$3 lines total shm
	lines=$(fl_conns "$name")
	total=$(grep -c . <<<"$lines" || true)
	shm=$(grep -c ' transport=shm ' <<<"$lines" || true)
	if [[ $total != "$count" ]]; then
		fl_fail "$name logged $total connection(s), expected $count ($what)"
	elif [[ $shm == "$total" ]]; then
		fl_pass "$name's $count connection(s) on transport=shm ($what)"
	else
		fl_fail "$name's connections not on shm ($what): $(grep -v ' transport=shm ' <<<"$lines" | head -n 3)"
	fi
}

# fl_expect_conns_fallback NAME COUNT REASON WHAT: NAME logged COUNT connections, all on
# transport=tcp with a reason matching the extended regex REASON.
fl_expect_conns_fallback() {
	local name=$1 count=$2 reason=$3 what=$4 lines total good
	lines=$(fl_conns "$name")
	total=$(grep -c . <<<"$lines" || true)
	good=$(grep -Ec " transport=tcp \\(.*($reason).*\\) rule=" <<<"$lines" || true)
	if [[ $total != "$count" ]]; then
		fl_fail "$name logged $total connection(s), expected $count ($what)"
	elif [[ $good == "$total" ]]; then
		fl_pass "$name's $count connection(s) fell back to tcp with a reason matching /$reason/ ($what)"
	else
		fl_fail "$name's connections do not fall back to tcp with a reason matching /$reason/ ($what): $(head -n 3 <<<"$lines")"
	fi
}

# fl_expect_conns_lines NAME TOTAL SHM: NAME logged TOTAL connections, SHM of them on shm and
# the others on tcp with a reason.
fl_expect_conns_lines() {
	local lines total shm tcp
	lines=$(fl_conns "$1")
	total=$(grep -c . <<<"$lines" || true)
	shm=$(grep -c ' transport=shm ' <<<"$lines" || true)
	tcp=$(grep -Ec ' transport=tcp \(.+\) rule=' <<<"$lines" || true)
	if [[ $total == "$2" && $shm == "$3" && $tcp == $(($2 - $3)) ]]; then
		fl_pass "$1 logged $2 connections: $3 on shm, the others on tcp with a reason"
	else
		fl_fail "$1 logged $total connections ($shm shm, $tcp tcp with a reason), expected $2 ($3 shm)"
	fi
}

# fl_expect_listening_shm NAME: NAME's routed listening socket is on shm (it has a door).
fl_expect_listening_shm() {
	local line
	line=$(grep -E '^viaudit: conns: .* listening ' "$VT_TMP/$1.log" | head -n 1 || true)
	if [[ -z $line ]]; then
		fl_fail "$1 logged no routed listening socket"
	elif [[ $line == *' transport=shm '* ]]; then
		fl_pass "$1's listening socket is on shm"
	else
		fl_fail "$1's listening socket is not on shm: $line"
	fi
}

# fl_expect_no_conns NAME WHY: NAME logged no connection or listening socket.
fl_expect_no_conns() {
	if grep -Eq '^viaudit: conns: ' "$VT_TMP/$1.log"; then
		fl_fail "$1 logged conns lines ($2): $(grep -E '^viaudit: conns: ' "$VT_TMP/$1.log" | head -n 3)"
	else
		fl_pass "$1 logged no conns line ($2)"
	fi
}

# Prints the commands and output of the section's processes when one of its checks failed.
fl_end_section() {
	local name
	[[ $FL_SECTION_FAILED == 0 ]] && return 0
	for name in "${FL_SECTION_NAMES[@]}"; do
		echo "    [$name] command: ${FL_COMMAND[$name]}"
		echo "    [$name] exit status: ${FL_STATUS[$name]:-still running}"
		echo "    [$name] ---- stdout ----"
		head -n 60 "$VT_TMP/$name.out" | sed 's/^/    /'
		echo "    [$name] ---- stderr ----"
		head -n 60 "$VT_TMP/$name.err" | sed 's/^/    /'
	done
	echo "    ----------------"
}

# Ends the script: 1 when a check failed, else 0.
fl_finish() {
	if [[ $VT_FAILURES != 0 ]]; then
		echo "$VT_FAILURES check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
