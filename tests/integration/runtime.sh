#!/usr/bin/env bash
# The policy at run time (missing, broken, strict, found by the search path) and the log channel.
# Usage: runtime.sh ECHO_SERVER CLIENT CLOSE_STDERR   (VIAUDIT_BUILD set by meson)
set -euo pipefail
. "$(dirname "$0")/../lib/viaudit_test.sh"
vt_init
echo_server=$1 client=$2 close_stderr=$3
vt_start_echo_server "$echo_server"
client_name=$(basename "$client")

good=$(vt_write_policy good.policy <<'P'
route main tcp 127.0.0.0/8:* tcp
P
)
broken=$(vt_write_policy broken.policy <<'P'
route main tcp 127.0.0.0/8:* shmm
route main tcp 127.0.0.0/8:99999 tcp
P
)
strict=$(vt_write_policy strict.policy <<'P'
set strict yes
route main tcp 127.0.0.0/8:* shmm
P
)
unmatched=$(vt_write_policy unmatched.policy <<'P'
route libnothing.so.* tcp *:* tcp
route main tcp 127.0.0.0/8:* tcp
P
)

vt_run missing "$VT_TMP/no-such.policy" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_stdout 'bind_client ok'
vt_expect_log_count 1 '.*no-such\.policy.*cannot read.*' 'one clear line for a missing policy'
vt_expect_log_count 1 '.*' 'and nothing else'
vt_end_run

vt_run broken "$broken" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_stdout 'bind_client ok'
vt_expect_log '.*broken\.policy:1:[0-9]+: error: .*shmm.*' 'the first error, with its position'
vt_expect_log '.*broken\.policy:2:[0-9]+: error: .*99999.*' 'and the second one too'
vt_expect_log_count 1 '.*broken\.policy:1:.*' 'printed once'
vt_expect_no_log 'viaudit: (routes|conns): .*' 'a policy with errors rebinds nothing'
vt_end_run

vt_run strict "$strict" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 127
vt_expect_log '.*strict\.policy:2:[0-9]+: error: .*' 'the error is printed'
if grep -q 'bind_client' "$VT_OUT"; then vt_fail 'main ran although set strict yes'; fi
vt_end_run

vt_run unmatched "$unmatched" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_log '.*unmatched\.policy:1:7: warning: CALLER .libnothing\.so\.\*. matches no object.*' \
	'a CALLER that matches nothing is a warning with its position'
vt_expect_log 'viaudit: conns: main .*transport=tcp.*' 'the other rule still routes'
vt_end_run

# The search path: no VIAUDIT_POLICY, $XDG_CONFIG_HOME/viaudit/PROG.policy.
mkdir -p "$VT_TMP/xdg/viaudit"
cp "$good" "$VT_TMP/xdg/viaudit/$client_name.policy"
vt_run search "" XDG_CONFIG_HOME="$VT_TMP/xdg" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_log "viaudit: conns: main .*rule=$VT_TMP/xdg/viaudit/$client_name\\.policy:1" \
	'the policy found by the search path is used'
vt_end_run

vt_run nopolicy "" XDG_CONFIG_HOME="$VT_TMP/empty" HOME="$VT_TMP/empty" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_stdout 'bind_client ok'
vt_expect_log_count 0 '.*' 'no policy found: nothing is printed'
vt_end_run

vt_run closed_stderr "$good" -- "$close_stderr" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_stdout 'close_stderr ok'
vt_expect_log 'viaudit: conns: main .*transport=tcp.*' 'the log outlives the program closing fd 2'
vt_end_run

vt_run log_file "$good" VIAUDIT_LOG_FILE="$VT_TMP/routes.log" -- "$client" "$VT_ECHO_PORT"
vt_expect_status 0
vt_expect_log_count 0 '.*' 'with VIAUDIT_LOG_FILE nothing goes to stderr'
grep -Eq '^viaudit: conns: main .*transport=tcp' "$VT_TMP/routes.log" ||
	vt_fail 'VIAUDIT_LOG_FILE has the conns line'
vt_end_run

vt_finish
