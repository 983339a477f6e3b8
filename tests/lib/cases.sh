# Bash functions for the command-line tests (cli.sh, explain.sh, install.sh): run a case with
# its output in files, check its status and lines, and count failures.
#
# Usage: set `tmp` to a scratch directory, source this file, then per case:
#   t NAME COMMAND...; expect_status N; expect_out REGEX; expect_err REGEX; ...
# and end with `exit $((failures > 0))` (or your own summary using $failures).

failures=0
name=
status=

# t NAME COMMAND...: runs one case, stdout and stderr to files; sets status.
t() {
	name=$1
	shift
	echo "--- $name: $*"
	status=0
	timeout -k 5 30 "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
}

# fail MESSAGE: records a failed check of the current case and shows its output.
fail() {
	echo "FAIL [$name]: $*"
	echo "    ---- stdout ----"
	sed 's/^/    /' "$tmp/out"
	echo "    ---- stderr ----"
	sed 's/^/    /' "$tmp/err"
	failures=$((failures + 1))
}

expect_status() { [[ "$status" == "$1" ]] || fail "exit status $status, expected $1"; }
# expect_out REGEX / expect_err REGEX: some line of stdout / stderr matches (whole line, ERE).
expect_out() { grep -Eqx -- "$1" "$tmp/out" || fail "no stdout line matching /$1/"; }
expect_err() { grep -Eqx -- "$1" "$tmp/err" || fail "no stderr line matching /$1/"; }
# expect_err_count N REGEX: exactly N stderr lines match.
expect_err_count() {
	local n
	n=$(grep -Ecx -- "$2" "$tmp/err" || true)
	[[ "$n" == "$1" ]] || fail "$n stderr line(s) matching /$2/, expected $1"
}
# quote TEXT: TEXT with the extended-regex metacharacters escaped.
quote() { printf '%s' "$1" | sed 's/[][\.*^$?+(){}|/]/\\&/g'; }
