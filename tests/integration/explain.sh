#!/bin/bash
# Checks `viaudit explain`: PLT and GOT imports, RPATH $ORIGIN, the policy verdicts, the policy search, and bad input.
#
# usage: explain.sh VIAUDIT EXPLAIN_PROG
#   EXPLAIN_PROG (tests/integration/explain/) calls connect through its PLT and is linked with
#   DT_RPATH $ORIGIN to libexplain_lib.so, built with -fno-plt, which calls socket and send.
set -euo pipefail

[[ $# == 2 ]] || { echo "usage: explain.sh VIAUDIT EXPLAIN_PROG" >&2; exit 1; }
for tool in readelf timeout grep; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
viaudit=$(realpath "$1")
prog=$(realpath "$2")
lib="$(dirname "$prog")/libexplain_lib.so"
[[ -x "$viaudit" ]] || { echo "ERROR: $viaudit was not built" >&2; exit 1; }
[[ -x "$prog" && -f "$lib" ]] || { echo "ERROR: $prog or $lib was not built" >&2; exit 1; }
# The test objects must have the imports the checks below expect; say so if the toolchain
# made something else of them, rather than fail on the command.
readelf -rW "$prog" | grep -Eq 'R_X86_64_JUMP_SLOT +[0-9a-f]+ connect' ||
	{ echo "SKIP: $prog does not import connect through its PLT"; exit 77; }
readelf -rW "$lib" | grep -Eq 'R_X86_64_GLOB_DAT +[0-9a-f]+ socket' ||
	{ echo "SKIP: $lib does not import socket through a GOT slot (no -fno-plt?)"; exit 77; }

tmp=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/viaudit-explain.XXXXXX")")
trap 'rm -rf -- "$tmp"' EXIT
cd "$tmp"
unset VIAUDIT_POLICY LD_LIBRARY_PATH
export XDG_CONFIG_HOME="$tmp/config" HOME="$tmp/home"
mkdir -p "$XDG_CONFIG_HOME" "$HOME"

. "$(dirname "$0")/../lib/cases.sh"

expect_no_out() { ! grep -Eqx -- "$1" "$tmp/out" || fail "a stdout line matches /$1/"; }
expect_err_lines() {
	local n
	n=$(wc -l <"$tmp/err")
	[[ "$n" == "$1" ]] || fail "$n stderr line(s), expected $1"
}
# expect_in_object OBJECT REGEX: a symbol line matching REGEX is in OBJECT's block of stdout.
expect_in_object() {
	awk -v obj="$1" '/^object /{on = ($2 == obj)} on' "$tmp/out" | grep -Eqx -- "$2" ||
		fail "no line matching /$2/ under object $1"
}

P=$(quote "$prog")
L=$(quote "$lib")

cat >explain.policy <<'EOF'
# viaudit explain test
route main               tcp  127.0.0.1:*  tcp
route libexplain_lib.so  *    *            kernel
route libnothere.so.*    tcp  *:*          shm
trace main connect
EOF
POL=$(quote "$tmp/explain.policy")

t explain_with_policy "$viaudit" explain -p explain.policy "$prog"
expect_status 0
expect_out "program $P"
expect_out 'policy explain\.policy \(-p\)'
expect_out "object main $P \(program\)"
expect_in_object main ' +connect +plt +-> route explain\.policy:2 tcp \(may route\), traced explain\.policy:5'
expect_out "object libexplain_lib\.so $L \(rpath\)"
expect_in_object libexplain_lib.so ' +socket +got +-> route explain\.policy:3 kernel \(never routed\)'
expect_in_object libexplain_lib.so ' +send +got +-> fd call: follows the descriptor'
expect_out 'object libc\.so\.6 /.*/libc\.so\.6 \((ld\.so\.cache|default dir)\)'
expect_out 'object ld-linux-x86-64\.so\.2 /.* \(interpreter\)'
expect_no_out 'object .*linux-vdso.*'
expect_err "explain\.policy:4:7: warning: CALLER 'libnothere\.so\.\*' matches no object of explain_prog \(it may match one loaded later with dlopen\)"
expect_err_lines 1

t explain_with_policy_from_environment env VIAUDIT_POLICY="$tmp/explain.policy" "$viaudit" explain "$prog"
expect_status 0
expect_out "policy $POL \(VIAUDIT_POLICY\)"
expect_in_object main " +connect +plt +-> route $POL:2 tcp \(may route\), traced $POL:5"

mkdir -p "$XDG_CONFIG_HOME/viaudit"
cp explain.policy "$XDG_CONFIG_HOME/viaudit/explain_prog.policy"
t explain_with_policy_from_search_path "$viaudit" explain "$prog"
expect_status 0
expect_out "policy $(quote "$XDG_CONFIG_HOME/viaudit/explain_prog.policy") \(search path\)"
rm "$XDG_CONFIG_HOME/viaudit/explain_prog.policy"

if [[ ! -e /etc/viaudit/explain_prog.policy && ! -e /etc/viaudit/default.policy ]]; then
	t explain_without_policy "$viaudit" explain "$prog"
	expect_status 0
	expect_out 'policy none: nothing would be rebound'
	expect_in_object main ' +connect +plt +-> kernel \(no policy\)'
else
	echo "--- explain_without_policy: not run, /etc/viaudit has a policy for every program"
fi

cat >kernel-only.policy <<'EOF'
route * * * kernel
EOF
t explain_with_policy_that_routes_nothing "$viaudit" explain -p kernel-only.policy "$prog"
expect_status 0
expect_in_object libexplain_lib.so ' +send +got +-> kernel \(policy routes nothing for explain_prog\)'

cat >bad.policy <<'EOF'
route main tcp 127.0.0.1:* warp
frobnicate
EOF
t explain_with_bad_policy "$viaudit" explain -p bad.policy "$prog"
expect_status 1
expect_err 'bad\.policy:1:[0-9]+: error: .*warp.*'
expect_err 'bad\.policy:2:1: error: .*frobnicate.*'

# A copy of the program without its library beside it: ld.so would not find it.
mkdir alone
cp "$prog" alone/explain_prog
t explain_missing_library "$viaudit" explain -p explain.policy alone/explain_prog
expect_status 0
expect_out 'object libexplain_lib\.so not found \(needed by main\)'

# LD_LIBRARY_PATH is searched after the loader's RPATH: the copy finds its library there.
t explain_library_from_ld_library_path env LD_LIBRARY_PATH="$(dirname "$lib")" \
	"$viaudit" explain -p explain.policy alone/explain_prog
expect_status 0
expect_out "object libexplain_lib\.so $L \(LD_LIBRARY_PATH\)"

t explain_missing_program "$viaudit" explain "$tmp/no-such-program"
expect_status 1
expect_err "viaudit explain: $(quote "$tmp/no-such-program"): No such file or directory"
expect_err_lines 1

t explain_program_not_in_path env PATH="$tmp" "$viaudit" explain no-such-program
expect_status 1
expect_err 'viaudit explain: no-such-program: No such file or directory'

printf 'just text\n' >notelf
t explain_not_elf "$viaudit" explain "$tmp/notelf"
expect_status 1
expect_err "viaudit explain: $(quote "$tmp/notelf"): not an ELF file"
expect_err_lines 1

t explain_program_from_path env PATH="$(dirname "$prog"):$PATH" "$viaudit" explain explain_prog
expect_status 0
expect_out "object main $P \(program, found in PATH\)"

t explain_no_program "$viaudit" explain
expect_status 2

t explain_two_programs "$viaudit" explain "$prog" "$prog"
expect_status 2

t explain_unknown_option "$viaudit" explain --frobnicate "$prog"
expect_status 2

t explain_help "$viaudit" explain --help
expect_status 0
expect_out 'usage: viaudit explain \[-p POLICY\] PROGRAM'

if [[ "$failures" != 0 ]]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
