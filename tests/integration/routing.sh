#!/bin/bash
# Proves that the audit module routes exactly the objects a policy names (PLT, -fno-plt GOT, dlopen) and that all of them still work.
#
# usage: routing.sh ECHO_SERVER ROUTE_MAIN   (VIAUDIT_BUILD: the meson build directory)
# libvia_{one,two,three,four}.so are found beside ROUTE_MAIN.
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 2 ]] || vt_die "usage: routing.sh ECHO_SERVER ROUTE_MAIN"
echo_server=$(realpath "$1")
route_main=$(realpath "$2")
libdir=$(dirname "$route_main")
# meson test points LD_LIBRARY_PATH at the build tree; the programs must find their
# libraries through their own RUNPATH, as the dlopen of libvia_four.so relies on.
unset LD_BIND_NOW LD_LIBRARY_PATH
vt_init

# How each object reaches connect/send/recv: through its PLT, or through GOT slots.
declare -A kind=([main]=plt [libvia_one.so]=plt [libvia_two.so]=plt
	[libvia_three.so]=got [libvia_four.so]=got)
objects=(main libvia_one.so libvia_two.so libvia_three.so libvia_four.so)

# --- premises: the objects are built the way this test relies on -----------------------------
vt_begin_checks premises "readelf on route_main and its libraries"
for object in "${objects[@]}"; do
	if [[ $object == main ]]; then file=$route_main; else file=$libdir/$object; fi
	[[ -f "$file" ]] || vt_die "$file was not built"
	vt_check_import "$file" connect "${kind[$object]}"
	vt_check_import "$file" send "${kind[$object]}"
	if [[ $object != main ]]; then
		readelf -dW "$file" | grep -Fq "Library soname: [$object]" ||
			vt_fail "premise: $object has no SONAME $object"
	fi
done
dynamic=$(readelf -dW "$route_main")
grep -Eq "R(UN)?PATH.*\\\$ORIGIN" <<<"$dynamic" || vt_fail "premise: route_main has no \$ORIGIN RUNPATH"
if grep -Fq '[libvia_four.so]' <<<"$dynamic"; then
	vt_fail "premise: route_main links libvia_four.so"
fi
vt_end_run

vt_start_echo_server "$echo_server"
port=$VT_ECHO_PORT
echo "echo server on 127.0.0.1:$port"

# check_works: the program exited 0 and every object's round trip succeeded.
check_works() {
	local name
	vt_expect_status 0
	for name in main one two three four; do
		vt_expect_stdout "$name ok"
	done
}

# rule_line POLICY CALLER: the line of the first `route CALLER` rule in POLICY.
rule_line() {
	grep -nE "^route $(vt_regex_quote "$2") " "$1" | head -n 1 | cut -d: -f1
}

# check_routed POLICY OBJECT TRANSPORT: OBJECT's creation calls go to viaudit by its rule, and
# its one connection is logged with the transport that carries it.
check_routed() {
	local policy=$1 object=$2 transport=$3 line where reason
	line=$(rule_line "$policy" "$object")
	where="[^ ]*$(vt_regex_quote "$(basename "$policy")"):$line"
	vt_expect_log "viaudit: routes: $object connect ${kind[$object]} -> viaudit \\($where $transport\\)" \
		"$object's connect is routed by line $line"
	case $transport in
	tcp) reason='' ;;
	# The echo server does not run viaudit: an shm or auto route finds no door.
	shm | auto) reason=" \\(no door at 127\\.0\\.0\\.1:$port: peer does not run viaudit\\)" ;;
	*) reason=' \([^)]+\)' ;;
	esac
	vt_expect_log_count 1 \
		"viaudit: conns: $object fd=[0-9]+ local=127\\.0\\.0\\.1:[0-9]+ peer=127\\.0\\.0\\.1:$port transport=tcp$reason rule=$where" \
		"$object's connection is carried by tcp"
}

# check_kernel POLICY OBJECT: a kernel rule leaves OBJECT's connect to libc and makes no connection log.
check_kernel() {
	local policy=$1 object=$2 where
	where="[^ ]*$(vt_regex_quote "$(basename "$policy")"):$(rule_line "$policy" '*')"
	vt_expect_log "viaudit: routes: $object connect ${kind[$object]} -> libc \\($where kernel\\)" \
		"the catch-all kernel rule applies to $object"
	vt_expect_no_log "viaudit: routes: $object connect .* -> viaudit .*" "$object is not named"
	vt_expect_no_log "viaudit: conns: $object .*" "$object is not routed"
}

# check_fd_calls: fd calls are rebound in every object, whatever the policy says about it.
check_fd_calls() {
	local object symbol
	for object in "${objects[@]}"; do
		for symbol in send recv; do
			vt_expect_log "viaudit: routes: $object $symbol ${kind[$object]} -> viaudit \\(fd call\\)" \
				"$symbol is an fd call, rebound in every object"
		done
	done
}

# --- control: the program works without viaudit -----------------------------------------------
vt_run_plain plain -- "$route_main" "$port"
check_works
vt_expect_no_viaudit_output
vt_end_run

# --- policy 1: one (shm), three (tcp, -fno-plt), four (auto, dlopen) are routed ----------------
policy1=$(vt_write_policy routing-one-three-four.policy <<'POLICY'
# libvia_one.so, libvia_three.so and libvia_four.so are routed; libvia_two.so and main are not.
route libvia_one.so   tcp 127.0.0.0/8:*  shm
route libvia_three.so tcp *:*            tcp
route libvia_four.so  tcp 127.0.0.1:*    auto
route *               *   *              kernel
POLICY
)
for bind_now in '' 1; do
	if [[ -n $bind_now ]]; then
		vt_run policy1-bind-now "$policy1" LD_BIND_NOW=1 -- "$route_main" "$port"
	else
		vt_run policy1-lazy "$policy1" -- "$route_main" "$port"
	fi
	check_works
	check_routed "$policy1" libvia_one.so shm
	check_routed "$policy1" libvia_three.so tcp
	check_routed "$policy1" libvia_four.so auto
	check_kernel "$policy1" libvia_two.so
	check_kernel "$policy1" main
	vt_expect_log_count 3 'viaudit: conns: .*' "one connection for each routed object"
	check_fd_calls
	vt_end_run
done

# --- policy 2: the complement, two (tcp) and main (shm) -----------------------------------------
policy2=$(vt_write_policy routing-two-main.policy <<'POLICY'
# libvia_two.so and main are routed; libvia_one.so, libvia_three.so and libvia_four.so are not.
route libvia_two.so tcp *:*            tcp
route main          tcp 127.0.0.0/8:*  shm
route *             *   *              kernel
POLICY
)
for bind_now in '' 1; do
	if [[ -n $bind_now ]]; then
		vt_run policy2-bind-now "$policy2" LD_BIND_NOW=1 -- "$route_main" "$port"
	else
		vt_run policy2-lazy "$policy2" -- "$route_main" "$port"
	fi
	check_works
	check_routed "$policy2" libvia_two.so tcp
	check_routed "$policy2" main shm
	check_kernel "$policy2" libvia_one.so
	check_kernel "$policy2" libvia_three.so
	check_kernel "$policy2" libvia_four.so
	vt_expect_log_count 2 'viaudit: conns: .*' "one connection for each routed object"
	check_fd_calls
	vt_end_run
done

# --- policy 3: no catch-all rule: objects no rule matches get no creation-call lines ------------
policy3=$(vt_write_policy routing-only-three.policy <<'POLICY'
# Only libvia_three.so is named, and there is no catch-all rule.
route libvia_three.so tcp 127.0.0.0/8:* tcp
POLICY
)
vt_run policy3 "$policy3" -- "$route_main" "$port"
check_works
check_routed "$policy3" libvia_three.so tcp
for object in main libvia_one.so libvia_two.so libvia_four.so; do
	vt_expect_no_log "viaudit: routes: $object (socket|bind|listen|accept|accept4|connect) .*" \
		"no rule matches $object"
	vt_expect_no_log "viaudit: conns: $object .*" "no rule matches $object"
done
vt_expect_log_count 1 'viaudit: conns: .*' "only libvia_three.so is routed"
check_fd_calls
vt_end_run

vt_finish
