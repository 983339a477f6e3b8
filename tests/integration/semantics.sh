#!/bin/bash
# Proves that a socket routed by viaudit behaves like a kernel TCP socket: every sem_check subtest, over every local address, in one mode.
#
# usage: semantics.sh MODE SEM_CHECK   (VIAUDIT_BUILD: the meson build directory)
#   kernel  without viaudit: the subtests' expectations are what Linux does
#   tcp     under viaudit with `route * tcp * tcp`; every connection must log transport=tcp
#   shm     under viaudit with `route * tcp * shm`; every connection must log transport=shm.
# Each subtest runs in a fresh process with a 20 s limit; the output is PASS/FAIL per subtest
# and address, then "N passed, M failed".
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 2 ]] || vt_die "usage: semantics.sh kernel|tcp|shm SEM_CHECK"
mode=$1
case $mode in
kernel | tcp | shm) ;;
*) vt_die "mode '$mode' is not kernel, tcp or shm" ;;
esac
sem_check=$(realpath "$2")
[[ -x "$sem_check" ]] || vt_die "$sem_check was not built"
if [[ $mode == kernel ]]; then
	# Without viaudit the module is not needed (nor refused when built with a sanitizer).
	command -v timeout >/dev/null || vt_skip "timeout is not installed"
	VT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-test.XXXXXX")
	trap vt_cleanup EXIT
else
	vt_init
fi

# --- the addresses: loopback of each family, and this host's first global address of each ----
candidates=(127.0.0.1 ::1)
others=()
if command -v ip >/dev/null; then
	for family in -4 -6; do
		address=$(ip -o "$family" addr show scope global 2>/dev/null |
			awk '$0 !~ /tentative|dadfailed/ { split($4, a, "/"); print a[1]; exit }')
		[[ -n "$address" ]] && others+=("$address")
	done
else
	echo "note: no 'ip' command; looking for other addresses with hostname -I"
	for address in $(hostname -I 2>/dev/null || true); do
		[[ $address == fe80:* ]] && continue
		if [[ $address == *:* ]]; then
			[[ " ${others[*]} " == *:* ]] || others+=("$address")
		else
			[[ " ${others[*]} " == *.* ]] || others+=("$address")
		fi
	done
fi
if [[ ${#others[@]} == 0 ]]; then
	echo "SKIP non-loopback cases: this host has no global IPv4 or IPv6 address"
fi
addresses=()
for address in "${candidates[@]}" "${others[@]}"; do
	if reason=$("$sem_check" PROBE "$address" 2>&1); then
		addresses+=("$address")
	else
		echo "SKIP cases over $address: $reason"
	fi
done
[[ ${#addresses[@]} -gt 0 ]] || vt_die "no address to test over"

mapfile -t subtests < <("$sem_check" LIST)
[[ ${#subtests[@]} -gt 0 ]] || vt_die "sem_check LIST printed no subtests"

# --- how each mode runs a subtest, and what its conns log must say ------------------------------
policy=
transport=
case $mode in
tcp | shm)
	transport=$mode
	policy=$(printf 'route * tcp * %s\n' "$mode" | vt_write_policy "semantics-$mode.policy")
	;;
esac

# log_host ADDRESS: how the conns log writes ADDRESS, as an extended regex.
log_host() {
	if [[ $1 == *:* ]]; then
		printf '\\[%s\\]' "$(vt_regex_quote "$1")"
	else
		vt_regex_quote "$1"
	fi
}

run_out="$VT_TMP/run.out"
run_err="$VT_TMP/run.err"
run_log="$VT_TMP/run.log"

# run_subtest NAME ADDRESS: runs it in a fresh process; sets run_status.
run_subtest() {
	rm -f "$run_log"
	run_status=0
	if [[ $mode == kernel ]]; then
		timeout -k 5 20 env -u LD_AUDIT "$sem_check" RUN "$1" "$2" kernel \
			>"$run_out" 2>"$run_err" || run_status=$?
	else
		timeout -k 5 20 env LD_AUDIT="$VT_MODULE" VIAUDIT_POLICY="$policy" \
			VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$run_log" \
			"$sem_check" RUN "$1" "$2" "$mode" >"$run_out" 2>"$run_err" || run_status=$?
	fi
	touch "$run_log"
}

# check_conns ADDRESS: prints a reason and returns 1 unless every line of the run's viaudit log
# is a conns line on $transport over ADDRESS, with at least both ends of one connection.
check_conns() {
	local host rule connection listening line count=0
	host=$(log_host "$1")
	rule="rule=[^ ]*$(vt_regex_quote "$(basename "$policy")"):1"
	connection="viaudit: conns: main fd=[0-9]+ local=$host:[0-9]+ peer=$host:[0-9]+"
	connection+=" transport=$transport $rule"
	listening="viaudit: conns: main fd=[0-9]+ local=$host:[0-9]+ listening"
	listening+=" transport=$transport $rule"
	while IFS= read -r line; do
		if [[ $line =~ ^$connection$ ]]; then
			count=$((count + 1))
		elif ! [[ $line =~ ^$listening$ ]]; then
			echo "log line not on transport=$transport over $1: $line"
			return 1
		fi
	done <"$run_log"
	if ((count < 2)); then
		echo "$count connection line(s) in the conns log; every subtest routes at least both ends of one"
		return 1
	fi
}

# --- every subtest over every address ---------------------------------------------------------
passed=0
failed=0
skipped=0
started=$(date +%s)
echo "mode $mode over ${addresses[*]}: ${#subtests[@]} subtests each"
for address in "${addresses[@]}"; do
	for name in "${subtests[@]}"; do
		run_subtest "$name" "$address"
		why=
		case $run_status in
		0)
			if [[ $mode != kernel ]]; then
				why=$(check_conns "$address") || true
			fi
			;;
		77)
			echo "SKIP $name $address: $(cat "$run_out" "$run_err")"
			skipped=$((skipped + 1))
			continue
			;;
		124 | 137) why="no result within 20 s" ;;
		*) why="exit status $run_status" ;;
		esac
		if [[ -z "$why" ]]; then
			passed=$((passed + 1))
			echo "PASS $name $address"
			sed -n 's/^note: /    note: /p' "$run_out"
		else
			failed=$((failed + 1))
			echo "FAIL $name $address: $why"
			sed 's/^/    /' "$run_out" "$run_err"
			if [[ $mode != kernel ]]; then
				echo "    ---- viaudit log ----"
				sed 's/^/    /' "$run_log"
			fi
		fi
	done
done

summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary (mode $mode, $(($(date +%s) - started)) s)"
((failed == 0))
