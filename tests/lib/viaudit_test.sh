# Bash functions the integration scripts source: run programs under the audit module and check its log.
#
# Usage in a script (bash, set -euo pipefail):
#   . "$(dirname "$0")/../lib/viaudit_test.sh"
#   vt_init                       # needs VIAUDIT_BUILD; makes $VT_TMP, cleans up on exit
#   vt_start_echo_server PATH     # sets VT_ECHO_PORT
#   vt_run NAME POLICY -- PROG ARGS...   # or vt_run_plain NAME -- PROG ARGS...
#   vt_expect_status 0; vt_expect_log 'REGEX' 'what it proves'; ...
#   vt_end_run                    # prints the run's output if one of its checks failed
#   vt_finish                     # exit status of the whole script
#
# A run's stdout, stderr and `viaudit:` log lines are in $VT_OUT, $VT_ERR and $VT_LOG (files).
# Checks never stop the script: every failed check of a run is reported, then its output.

VT_FAILURES=0
VT_RUN_FAILED=0
VT_ECHO_PID=
VT_RUN_NAME=
VT_RUN_COMMAND=
VT_STATUS=

# Removes the temporary directory and stops the echo server this script started.
vt_cleanup() {
	if [[ -n "$VT_ECHO_PID" ]]; then
		kill "$VT_ECHO_PID" 2>/dev/null || true
		wait "$VT_ECHO_PID" 2>/dev/null || true
	fi
	if [[ -n "${VT_TMP:-}" && -d "$VT_TMP" ]]; then
		rm -rf -- "$VT_TMP"
	fi
}

# Exits 77 (skip) with a reason: only for a prerequisite the machine truly lacks.
vt_skip() {
	echo "SKIP: $*"
	exit 77
}

# Exits 1 at once: for a broken set-up, not for a failed check.
vt_die() {
	echo "ERROR: $*" >&2
	exit 1
}

# Checks the environment and sets VT_MODULE (absolute path of libviaudit.so) and VT_TMP.
vt_init() {
	local tool
	[[ -n "${VIAUDIT_BUILD:-}" ]] ||
		vt_die "VIAUDIT_BUILD is not set (meson test sets it to the build directory)"
	VT_MODULE="$(cd "$VIAUDIT_BUILD" && pwd)/audit/libviaudit.so"
	[[ -f "$VT_MODULE" ]] || vt_die "the audit module $VT_MODULE was not built"
	for tool in timeout readelf grep; do
		command -v "$tool" >/dev/null || vt_skip "$tool is not installed"
	done
	# An audit module built with -Db_sanitize=address cannot be loaded by LD_AUDIT: the ASan
	# runtime refuses to start unless it comes first in the initial library list.
	if readelf -dW "$VT_MODULE" | grep -Eq 'NEEDED.*\[lib(asan|tsan|hwasan)\.so'; then
		vt_skip "the audit module is built with a sanitizer runtime that LD_AUDIT cannot load"
	fi
	VT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-test.XXXXXX")
	trap vt_cleanup EXIT
}

# Starts PATH (tests/lib/echo_server) on a port the kernel picks; sets VT_ECHO_PORT.
vt_start_echo_server() {
	local server=$1 tries
	"$server" -t 120 >"$VT_TMP/echo.port" 2>"$VT_TMP/echo.err" &
	VT_ECHO_PID=$!
	for ((tries = 0; tries < 100; tries++)); do
		if [[ -s "$VT_TMP/echo.port" ]]; then
			VT_ECHO_PORT=$(head -n 1 "$VT_TMP/echo.port")
			[[ "$VT_ECHO_PORT" =~ ^[0-9]+$ ]] ||
				vt_die "echo server printed '$VT_ECHO_PORT' instead of a port"
			return 0
		fi
		kill -0 "$VT_ECHO_PID" 2>/dev/null ||
			vt_die "echo server exited: $(cat "$VT_TMP/echo.err")"
		sleep 0.05
	done
	vt_die "echo server printed no port within 5 s"
}

# Writes a policy file NAME into VT_TMP from stdin and prints its path.
vt_write_policy() {
	local path="$VT_TMP/$1"
	cat >"$path"
	printf '%s\n' "$path"
}

# vt_begin_checks NAME WHAT: checks that are not about a program run (e.g. how files were built).
vt_begin_checks() {
	VT_RUN_NAME=$1
	VT_RUN_COMMAND=$2
	VT_RUN_FAILED=0
	VT_OUT=/dev/null
	VT_ERR=/dev/null
	VT_STATUS=-
	echo "--- $VT_RUN_NAME: $VT_RUN_COMMAND"
}

# Runs "$@" (after a leading --) with a time limit, stdout/stderr to files; sets VT_STATUS.
vt__execute() {
	VT_RUN_FAILED=0
	VT_OUT="$VT_TMP/$VT_RUN_NAME.out"
	VT_ERR="$VT_TMP/$VT_RUN_NAME.err"
	VT_LOG="$VT_TMP/$VT_RUN_NAME.log"
	VT_STATUS=0
	timeout -k 5 "${VT_TIMEOUT:-15}" "$@" >"$VT_OUT" 2>"$VT_ERR" || VT_STATUS=$?
	grep '^viaudit: ' "$VT_ERR" >"$VT_LOG" || true
	[[ "$VT_STATUS" != 124 ]] || vt_fail "timed out after ${VT_TIMEOUT:-15} s"
}

# vt_split_assignments [VAR=VALUE...] -- PROG ARGS...: the VAR=VALUE words into
# VT_ASSIGNMENTS, PROG ARGS... into VT_COMMAND (the argument form of every *_run helper).
vt_split_assignments() {
	VT_ASSIGNMENTS=()
	while [[ $# -gt 0 && "$1" != -- ]]; do
		VT_ASSIGNMENTS+=("$1")
		shift
	done
	[[ $# -gt 0 ]] || vt_die "a run needs -- before its command"
	shift
	VT_COMMAND=("$@")
}

# vt_run NAME POLICY [VAR=VALUE...] -- PROG ARGS...: run under LD_AUDIT with routes,conns logging.
vt_run() {
	local policy=$2 assignments=()
	VT_RUN_NAME=$1
	shift 2
	vt_split_assignments "$@"
	assignments=("${VT_ASSIGNMENTS[@]}")
	set -- "${VT_COMMAND[@]}"
	VT_RUN_COMMAND="LD_AUDIT=$VT_MODULE VIAUDIT_POLICY=$policy VIAUDIT_LOG=routes,conns ${assignments[*]} $*"
	echo "--- $VT_RUN_NAME: $VT_RUN_COMMAND"
	vt__execute env LD_AUDIT="$VT_MODULE" VIAUDIT_POLICY="$policy" VIAUDIT_LOG=routes,conns \
		"${assignments[@]}" "$@"
}

# vt_run_plain NAME [VAR=VALUE...] -- PROG ARGS...: run without viaudit, as a control.
vt_run_plain() {
	local assignments=()
	VT_RUN_NAME=$1
	shift
	vt_split_assignments "$@"
	assignments=("${VT_ASSIGNMENTS[@]}")
	set -- "${VT_COMMAND[@]}"
	VT_RUN_COMMAND="${assignments[*]} $*"
	echo "--- $VT_RUN_NAME (no viaudit): $VT_RUN_COMMAND"
	vt__execute env -u LD_AUDIT "${assignments[@]}" "$@"
}

# vt_fail MESSAGE: records a failed check of the current run.
vt_fail() {
	echo "FAIL [$VT_RUN_NAME]: $*"
	VT_RUN_FAILED=1
	VT_FAILURES=$((VT_FAILURES + 1))
}

# vt_expect_status N: the program exited with status N.
vt_expect_status() {
	[[ "$VT_STATUS" == "$1" ]] || vt_fail "exit status $VT_STATUS, expected $1"
}

# vt_expect_stdout REGEX: some stdout line matches the extended regex (whole line).
vt_expect_stdout() {
	grep -Eqx -- "$1" "$VT_OUT" || vt_fail "no stdout line matching /$1/"
}

# vt_expect_log REGEX [WHY]: some `viaudit:` log line matches the extended regex (whole line).
vt_expect_log() {
	grep -Eqx -- "$1" "$VT_LOG" || vt_fail "no log line matching /$1/${2:+ ($2)}"
}

# vt_expect_no_log REGEX [WHY]: no `viaudit:` log line matches the extended regex (whole line).
vt_expect_no_log() {
	local hits
	hits=$(grep -Ex -- "$1" "$VT_LOG" || true)
	[[ -z "$hits" ]] || vt_fail "unexpected log line(s) matching /$1/${2:+ ($2)}: $hits"
}

# vt_expect_log_count N REGEX [WHY]: exactly N `viaudit:` log lines match the regex.
vt_expect_log_count() {
	local count
	count=$(grep -Ecx -- "$2" "$VT_LOG" || true)
	[[ "$count" == "$1" ]] ||
		vt_fail "$count log line(s) matching /$2/, expected $1${3:+ ($3)}"
}

# vt_expect_no_viaudit_output: without LD_AUDIT nothing may print `viaudit:` lines.
vt_expect_no_viaudit_output() {
	[[ ! -s "$VT_LOG" ]] || vt_fail "viaudit log lines without LD_AUDIT"
}

# Prints the command and its output when a check of this run failed.
vt_end_run() {
	[[ "$VT_RUN_FAILED" == 0 ]] && return 0
	echo "    command: $VT_RUN_COMMAND"
	echo "    exit status: $VT_STATUS"
	echo "    ---- stdout ----"
	sed 's/^/    /' "$VT_OUT"
	echo "    ---- stderr ----"
	sed 's/^/    /' "$VT_ERR"
	echo "    ----------------"
}

# vt_import_kind FILE SYMBOL: how FILE imports SYMBOL: plt (JUMP_SLOT), got (GLOB_DAT), both or none.
vt_import_kind() {
	local relocs plt=0 got=0
	relocs=$(readelf -rW "$1") || vt_die "readelf -r $1 failed"
	grep -Eq "_JUMP_SLOT +[0-9a-f]+ +$2(@|\\s|$)" <<<"$relocs" && plt=1
	grep -Eq "_GLOB_DAT +[0-9a-f]+ +$2(@|\\s|$)" <<<"$relocs" && got=1
	case "$plt$got" in
	10) echo plt ;;
	01) echo got ;;
	11) echo both ;;
	*) echo none ;;
	esac
}

# vt_check_import FILE SYMBOL KIND: a premise of the test about how FILE was built.
vt_check_import() {
	local kind
	kind=$(vt_import_kind "$1" "$2")
	[[ "$kind" == "$3" ]] ||
		vt_fail "premise: $(basename "$1") imports $2 through $kind, expected $3 only"
}

# vt_regex_quote TEXT: TEXT with the extended-regex metacharacters escaped.
vt_regex_quote() {
	printf '%s' "$1" | sed 's/[][\.*^$?+(){}|/]/\\&/g'
}

# Ends the script: 0 when every check passed, else 1.
vt_finish() {
	if [[ "$VT_FAILURES" != 0 ]]; then
		echo "$VT_FAILURES check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
