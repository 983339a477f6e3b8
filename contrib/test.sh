#!/bin/bash
# The README's test command: build with -Werror and run every suite but bench, then the unit
# (and fuzz) suites again in a build with -Db_sanitize=address,undefined. Exits non-zero on
# any failure, and when a suite that must run has no tests.
#
# Build directories: build/ and build-asan/ at the top of the tree (reconfigured when they
# exist); VIAUDIT_BUILD_DIR and VIAUDIT_ASAN_BUILD_DIR override them.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${VIAUDIT_BUILD_DIR:-build}
asan_build=${VIAUDIT_ASAN_BUILD_DIR:-build-asan}
# UBSan only reports by default; a test must fail on undefined behaviour.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

results=()
failed=0
log=$(mktemp "${TMPDIR:-/tmp}/viaudit-test.XXXXXX")
trap 'rm -f "$log"' EXIT

# configure DIR MESON-OPTIONS...: sets up DIR, or reconfigures it when it is set up already.
configure() {
	local dir=$1
	shift
	if [[ -f "$dir/meson-private/coredata.dat" ]]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

# stage NAME COMMAND...: runs one step and records its result; later steps still run.
stage() {
	local name=$1
	shift
	echo
	echo "=== test.sh: $name: $*"
	if "$@"; then
		results+=("$name: ok")
	else
		results+=("$name: FAILED")
		failed=1
		return 1
	fi
}

# test_stage NAME BUILD MESON-TEST-ARGS...: runs meson test, records its counts; no tests
# at all is a failure, never a silent pass.
test_stage() {
	local name=$1 dir=$2 status=0 ok skipped fails
	shift 2
	echo
	echo "=== test.sh: $name: meson test -C $dir --print-errorlogs $*"
	meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$log" || status=$?
	if grep -q '^No suitable tests defined' "$log"; then
		results+=("$name: FAILED (no tests defined)")
		failed=1
		return
	fi
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log")
	skipped=$(sed -n 's/^Skipped: *\([0-9]*\).*/\1/p' "$log")
	fails=$(awk '/^(Fail|Timeout|Unexpected Pass):/ { n += $NF } END { print n + 0 }' "$log")
	if ((status != 0)); then
		results+=("$name: FAILED ($fails failed, ${ok:-0} ok, ${skipped:-0} skipped)")
		failed=1
	else
		results+=("$name: ok (${ok:-0} ok, ${skipped:-0} skipped)")
	fi
}

# The suites a build defines, one per line (unit, integration, ...).
suites() {
	meson introspect --tests "$1" | python3 -c '
import json, sys
print("\n".join(sorted({s.split(":")[-1] for t in json.load(sys.stdin) for s in t["suite"]})))'
}

if stage "configure $build" configure "$build" -Dwerror=true &&
	stage "build $build" ninja -C "$build"; then
	test_stage "tests (all suites but bench)" "$build" --no-suite bench
fi

if stage "configure $asan_build" configure "$asan_build" \
		-Db_sanitize=address,undefined -Dwerror=true &&
	stage "build $asan_build" ninja -C "$asan_build"; then
	asan_suites=(--suite unit)
	if suites "$asan_build" | grep -qx fuzz; then
		asan_suites+=(--suite fuzz)
	fi
	test_stage "unit tests under ASan+UBSan" "$asan_build" "${asan_suites[@]}"
fi

echo
summary=$(IFS=';'; echo "${results[*]}")
if ((failed)); then
	echo "test.sh: FAILED: ${summary//;/; }"
	exit 1
fi
echo "test.sh: all passed: ${summary//;/; }"
