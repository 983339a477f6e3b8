#!/bin/bash
# Checks the viaudit command's contract: usage and exit codes, `check` diagnostics, `run`'s environment and errors.
#
# usage: cli.sh VIAUDIT   (the viaudit executable of a build tree)
# shellcheck disable=SC2016 # $VARS in single quotes are for the child shell to expand
set -euo pipefail

[[ $# == 1 ]] || { echo "usage: cli.sh VIAUDIT" >&2; exit 1; }
viaudit=$(realpath "$1")
build_module=$(realpath -m "$(dirname "$viaudit")/../../audit/libviaudit.so")
tmp=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/viaudit-cli.XXXXXX")")
trap 'rm -rf -- "$tmp"' EXIT
cd "$tmp"
unset LD_AUDIT VIAUDIT_POLICY VIAUDIT_LOG VIAUDIT_LOG_FILE VIAUDIT_MODULE

. "$(dirname "$0")/../lib/cases.sh"

expect_empty_out() { [[ ! -s "$tmp/out" ]] || fail "stdout is not empty"; }

cat >good.policy <<'EOF'
# every construct once
set ring_size 1M
set strict no
program *
route main        tcp  127.0.0.0/8:*    tcp
route libpq.so.*  tcp  *:5432           shm    reconnect=30s
route *           *    *                kernel
trace main connect,send
EOF
cat >bad.policy <<'EOF'
route main tcp 127.0.0.0/8:* warp
route main tcp 127.0.0.0/8:* tcp
route main bogus * tcp
EOF

# --- usage ----------------------------------------------------------------------------------
t help "$viaudit" --help
expect_status 0
expect_out 'usage: viaudit COMMAND .*'
expect_out '  run \[-p POLICY\] \[-l LOG\] -- PROGRAM \[ARGS\.\.\.\]'
expect_out '  check POLICY\.\.\. .*'
expect_out '  explain \[-p POLICY\] PROGRAM'

t help-short "$viaudit" -h
expect_status 0
expect_out 'usage: viaudit COMMAND .*'

t version "$viaudit" --version
expect_status 0
expect_out 'viaudit [0-9]+\.[0-9]+\.[0-9]+'

t no-command "$viaudit"
expect_status 2

t unknown-command "$viaudit" frobnicate
expect_status 2
expect_err "viaudit: unknown command 'frobnicate'"

t unknown-option "$viaudit" --frobnicate
expect_status 2

t stat-bad-pid "$viaudit" stat not-a-pid
expect_status 2

t run-help "$viaudit" run --help
expect_status 0
expect_out 'usage: viaudit run .*'

t check-help "$viaudit" check --help
expect_status 0
expect_out 'usage: viaudit check .*'

# --- check ----------------------------------------------------------------------------------
t check-good "$viaudit" check good.policy
expect_status 0
expect_out 'good\.policy: ok \(3 routes, 1 trace\)'
[[ ! -s "$tmp/err" ]] || fail "diagnostics for a good policy"

t check-bad "$viaudit" check bad.policy
expect_status 1
expect_err 'bad\.policy:1:[0-9]+: error: .+'
expect_err 'bad\.policy:3:[0-9]+: error: .+'
expect_err_count 0 'bad\.policy:2:[0-9]+: error: .+'
expect_empty_out

t check-every-file "$viaudit" check bad.policy good.policy
expect_status 1
expect_out 'good\.policy: ok \(3 routes, 1 trace\)'
expect_err 'bad\.policy:3:[0-9]+: error: .+'

t check-missing-file "$viaudit" check missing.policy
expect_status 1
expect_err 'missing\.policy.*: error: .*'

t check-nothing "$viaudit" check
expect_status 2

# --- run: errors before the program starts ---------------------------------------------------
t run-no-program "$viaudit" run
expect_status 2
expect_err 'viaudit run: no program given'

t run-missing-program "$viaudit" run -- no-such-program-here
expect_status 127
expect_err 'viaudit run: no-such-program-here: No such file or directory'

t run-missing-path "$viaudit" run -- ./no/such/program
expect_status 127
expect_err 'viaudit run: \./no/such/program: No such file or directory'

t run-not-executable "$viaudit" run -- ./good.policy
expect_status 126

t run-bad-log "$viaudit" run -l routes,bogus -- true
expect_status 2
expect_err "viaudit run: -l: unknown log category 'bogus' .*"

t run-unknown-option "$viaudit" run -x -- true
expect_status 2

t run-bad-policy "$viaudit" run -p bad.policy -- touch started
expect_status 1
expect_err 'bad\.policy:1:[0-9]+: error: .+'
expect_err 'bad\.policy:3:[0-9]+: error: .+'
[[ ! -e started ]] || fail "the program ran although the policy has errors"

rm -f started
t run-missing-policy "$viaudit" run -p missing.policy -- touch started
expect_status 1
[[ ! -e started ]] || fail "the program ran although the policy is missing"

t run-missing-module env VIAUDIT_MODULE=/no/such/libviaudit.so "$viaudit" run -- true
expect_status 1
expect_err 'viaudit run: VIAUDIT_MODULE=/no/such/libviaudit\.so: No such file or directory'

# --- run: the environment the program gets ----------------------------------------------------
# An empty file as the module: ld.so reports it cannot load it and runs the program anyway, so
# these cases do not depend on the audit module itself.
: >fake-module.so
fake=$tmp/fake-module.so
show_env='printf "LD_AUDIT=%s\nVIAUDIT_POLICY=%s\nVIAUDIT_LOG=%s\n" "$LD_AUDIT" "$VIAUDIT_POLICY" "$VIAUDIT_LOG"'

t run-sets-environment env VIAUDIT_MODULE=fake-module.so \
	"$viaudit" run -p good.policy -l routes,conns -- sh -c "$show_env"
expect_status 0
expect_out "LD_AUDIT=$fake"
expect_out "VIAUDIT_POLICY=$tmp/good\.policy"
expect_out 'VIAUDIT_LOG=routes,conns'

t run-appends-ld-audit env VIAUDIT_MODULE="$fake" LD_AUDIT=/other/audit.so \
	"$viaudit" run -- sh -c "$show_env"
expect_status 0
expect_out "LD_AUDIT=/other/audit\.so:$fake"

t run-without-dashdash env VIAUDIT_MODULE="$fake" "$viaudit" run sh -c 'echo "$0 $1"' a b
expect_status 0
expect_out 'a b'

t run-returns-program-status env VIAUDIT_MODULE="$fake" "$viaudit" run -- sh -c 'exit 7'
expect_status 7

cp /bin/true setuid-true
chmod u+s setuid-true
t run-warns-setuid env VIAUDIT_MODULE="$fake" "$viaudit" run -- ./setuid-true
expect_status 0
expect_err 'viaudit run: warning: \./setuid-true is setuid/setgid: .*LD_AUDIT paths with a slash in secure mode.*'

if [[ $(id -u) == 0 ]]; then
	# Owned by another user, the program really runs in secure mode.
	chown nobody setuid-true
	chmod u+s setuid-true
	t run-warns-setuid-secure env VIAUDIT_MODULE="$fake" "$viaudit" run -- ./setuid-true
	expect_status 0
	expect_err 'viaudit run: warning: \./setuid-true is setuid/setgid: the dynamic linker ignores LD_AUDIT paths with a slash in secure mode; nothing will be rebound'
fi

# --- run: the module of the build tree ---------------------------------------------------------
if [[ -f "$build_module" ]]; then
	t run-finds-build-module "$viaudit" run -- sh -c 'echo "LD_AUDIT=$LD_AUDIT"'
	expect_status 0
	expect_out "LD_AUDIT=$build_module"
else
	echo "--- run-finds-build-module: not run, $build_module was not built"
	failures=$((failures + 1))
fi

if ((failures)); then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
