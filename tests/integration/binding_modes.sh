#!/bin/bash
# Proves that an executable is routed and works whether it binds lazily, with -z now, or through -fno-plt GOT slots.
#
# usage: binding_modes.sh ECHO_SERVER BIND_CLIENT_LAZY BIND_CLIENT_NOW BIND_CLIENT_NOPLT
# (VIAUDIT_BUILD: the meson build directory)
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 4 ]] || vt_die "usage: binding_modes.sh ECHO_SERVER LAZY NOW NOPLT"
echo_server=$(realpath "$1")
declare -A client=([lazy]=$(realpath "$2") [now]=$(realpath "$3") [noplt]=$(realpath "$4"))
declare -A kind=([lazy]=plt [now]=plt [noplt]=got)
modes=(lazy now noplt)
# meson test points LD_LIBRARY_PATH at the build tree; the programs must find their
# libraries through their own RUNPATH, as the dlopen of libvia_four.so relies on.
unset LD_BIND_NOW LD_LIBRARY_PATH
vt_init

# --- premises: each client is built the way its name says ---------------------------------------
vt_begin_checks premises "readelf on the bind_client programs"
for mode in "${modes[@]}"; do
	[[ -f "${client[$mode]}" ]] || vt_die "${client[$mode]} was not built"
	vt_check_import "${client[$mode]}" connect "${kind[$mode]}"
	now=0
	if readelf -dW "${client[$mode]}" | grep -Eq '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW'; then
		now=1
	fi
	case $mode in
	lazy) [[ $now == 0 ]] || vt_fail "premise: the lazy client is marked BIND_NOW" ;;
	now) [[ $now == 1 ]] || vt_fail "premise: the -z now client is not marked BIND_NOW" ;;
	esac
done
vt_end_run

vt_start_echo_server "$echo_server"
port=$VT_ECHO_PORT
echo "echo server on 127.0.0.1:$port"

policy=$(vt_write_policy binding-modes.policy <<'POLICY'
# The executable's connections to loopback are routed.
route main tcp 127.0.0.0/8:* tcp
route *    *   *             kernel
POLICY
)
where="[^ ]*binding-modes\\.policy:2"

for mode in "${modes[@]}"; do
	vt_run_plain "$mode-plain" -- "${client[$mode]}" "$port"
	vt_expect_status 0
	vt_expect_stdout 'bind_client ok'
	vt_expect_no_viaudit_output
	vt_end_run

	vt_run "$mode-routed" "$policy" -- "${client[$mode]}" "$port"
	vt_expect_status 0
	vt_expect_stdout 'bind_client ok'
	vt_expect_log "viaudit: routes: main connect ${kind[$mode]} -> viaudit \\($where tcp\\)" \
		"the $mode client's connect is routed"
	vt_expect_log "viaudit: routes: main send ${kind[$mode]} -> viaudit \\(fd call\\)" \
		"the $mode client's send is rebound"
	vt_expect_log_count 1 \
		"viaudit: conns: main fd=[0-9]+ local=127\\.0\\.0\\.1:[0-9]+ peer=127\\.0\\.0\\.1:$port transport=tcp rule=$where" \
		"the $mode client's connection is routed over tcp"
	vt_end_run
done

vt_finish
