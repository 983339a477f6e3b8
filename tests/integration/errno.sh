#!/bin/bash
# Proves that routed socket calls that fail leave their error in the program's errno, from the executable and from a library.
#
# usage: errno.sh ERRNO_MAIN   (VIAUDIT_BUILD: the meson build directory)
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 1 ]] || vt_die "usage: errno.sh ERRNO_MAIN"
errno_main=$(realpath "$1")
# meson test points LD_LIBRARY_PATH at the build tree; the programs must find their
# libraries through their own RUNPATH, as the dlopen of libvia_four.so relies on.
unset LD_BIND_NOW LD_LIBRARY_PATH
vt_init

# The checks errno_checks.c makes, each with the errno it must leave.
checks=(
	connect-refused:ECONNREFUSED
	send-unused-fd:EBADF
	send-negative-fd:EBADF
	send-closed-fd:EBADF
	connect-short-length:EINVAL
	connect-zero-length:EINVAL
	connect-oversized-length:EINVAL
)
callers=(main libvia_errno.so)

# check_errno_lines: every check passed, from both objects.
check_errno_lines() {
	local who check
	vt_expect_status 0
	for who in "${callers[@]}"; do
		for check in "${checks[@]}"; do
			vt_expect_stdout "$(vt_regex_quote "$who") ${check%%:*} ${check#*:} ok"
		done
	done
	vt_expect_stdout "0 failed"
}

# --- control: the checks pass without viaudit (the kernel's own errno values) ------------------
vt_run_plain plain -- "$errno_main"
check_errno_lines
vt_expect_no_viaudit_output
vt_end_run

# --- routed: main by a tcp rule, the library by an shm rule (which falls back to tcp) ----------
policy=$(vt_write_policy errno.policy <<'POLICY'
# Both objects' calls are routed, so their errors come back through viaudit.
route main            tcp 127.0.0.0/8:* tcp
route libvia_errno.so tcp 127.0.0.0/8:* shm
route *               *   *             kernel
POLICY
)
where="[^ ]*errno\\.policy"
for bind_now in '' 1; do
	if [[ -n $bind_now ]]; then
		vt_run routed-bind-now "$policy" LD_BIND_NOW=1 -- "$errno_main"
	else
		vt_run routed-lazy "$policy" -- "$errno_main"
	fi
	check_errno_lines
	vt_expect_log "viaudit: routes: main connect plt -> viaudit \\($where:2 tcp\\)" \
		"main's connect is routed"
	vt_expect_log "viaudit: routes: libvia_errno\\.so connect plt -> viaudit \\($where:3 shm\\)" \
		"the library's connect is routed"
	for who in main 'libvia_errno\.so'; do
		vt_expect_log "viaudit: routes: $who send plt -> viaudit \\(fd call\\)" \
			"send on a bad fd goes through viaudit"
		# The closed-fd check closes a routed connection before its send.
		vt_expect_log "viaudit: conns: $who fd=[0-9]+ local=127\\.0\\.0\\.1:[0-9]+ peer=127\\.0\\.0\\.1:[0-9]+ transport=(tcp|shm).* rule=$where:[23]" \
			"the send-closed-fd check used a routed connection"
	done
	vt_end_run
done

vt_finish
