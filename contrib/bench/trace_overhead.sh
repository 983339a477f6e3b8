#!/bin/bash
# Measures what tracing costs (issue 6 item 5): a traced call and an untraced call, each side by
# side with the same call without viaudit, in the same run.
#
# usage: trace_overhead.sh BUILD_DIR
#
# The programs are the overhead benchmark's (bench_calls and its two libraries). Under
# trace.policy, `write` from libbench_selected.so is traced (a libffi closure formats each
# call and writes the line to VIAUDIT_LOG_FILE=/dev/null, as `viaudit trace -o /dev/null`
# would), while getppid() and strlen() from libbench_unselected.so are not: their bindings are
# libc's own, so they should cost what they cost without viaudit. Runs with and without
# viaudit alternate; every figure is a median of per-round medians, every difference the
# median of the per-round differences. Instruction counts (valgrind's callgrind, when it can
# run the program under LD_AUDIT) show the untraced calls' cost exactly, whatever the load.
#
# Knobs: VIAUDIT_BENCH_ROUNDS (default 11), VIAUDIT_BENCH_REPEATS (default 5).
# Exits 0 once the table is printed; 1 when it could not measure; 2 on bad usage.
set -euo pipefail

die() {
	echo "trace_overhead.sh: could not measure: $*" >&2
	exit 1
}

[[ $# == 1 ]] || {
	echo "usage: trace_overhead.sh BUILD_DIR" >&2
	exit 2
}
build=$(realpath "$1") || die "no build directory $1"
here=$(cd "$(dirname "$0")" && pwd)
bench=$build/contrib/bench
module=$build/audit/libviaudit.so
policy=$here/trace.policy
rounds=${VIAUDIT_BENCH_ROUNDS:-11}
repeats=${VIAUDIT_BENCH_REPEATS:-5}

[[ -x $bench/bench_calls ]] || die "$bench/bench_calls is not built (ninja -C $build)"
[[ -f $module ]] || die "$module is not built (ninja -C $build)"
[[ -f $policy ]] || die "no policy $policy"

unset LD_AUDIT LD_PRELOAD LD_LIBRARY_PATH LD_BIND_NOW MALLOC_PERTURB_ MALLOC_CHECK_
for name in $(compgen -e | grep '^VIAUDIT_' || true); do
	[[ $name == VIAUDIT_BENCH_* ]] || unset "$name"
done
work=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-trace-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# traced COMMAND...: runs COMMAND as `viaudit trace -p trace.policy -o LOG` would, LOG being
# $TRACE_LOG (default /dev/null).
traced() {
	env LD_AUDIT="$module" VIAUDIT_POLICY="$policy" VIAUDIT_LOG=trace \
		VIAUDIT_LOG_FILE="${TRACE_LOG:-/dev/null}" "$@"
}

BENCH_MEASURED=traced
BENCH_WRAP=traced
# shellcheck source=bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"

measures=(write getppid strlen)
declare -A count=([write]=20000 [getppid]=100000 [strlen]=2000000)
declare -A loop=([write]=bench_selected_write [getppid]=bench_unselected_getppid
	[strlen]=bench_unselected_strlen)
declare -A label=(
	[write]='write(/dev/null, 1 B), traced'
	[getppid]='getppid(), not traced'
	[strlen]='strlen(), not traced')

# --- premises: write is traced from libbench_selected.so, nothing else is -----------------------
echo "trace_overhead.sh: module $module"
echo "trace_overhead.sh: policy $policy"
for measure in "${measures[@]}"; do
	TRACE_LOG=$work/$measure.trace traced "$bench/bench_calls" -r 1 "$measure" 10 >/dev/null ||
		die "bench_calls $measure fails under tracing"
done
lines=$(grep -c '^viaudit: trace: [0-9]*\.[0-9]* libbench_selected\.so write(fd=[0-9]*, buf=1:"x", count=1) = 1 [0-9.]*us$' "$work/write.trace" || true)
[[ $lines -ge 10 ]] || die "the traced write loop wrote $lines trace lines: $(head -n 3 "$work/write.trace")"
for measure in getppid strlen; do
	[[ ! -s $work/$measure.trace ]] || die "$measure is traced: $(head -n 3 "$work/$measure.trace")"
done
echo "trace_overhead.sh: premise holds: each traced write logs one line, e.g."
grep -m 1 'write(' "$work/write.trace" | sed 's/^/    /'

# --- timed rounds -------------------------------------------------------------------------------
echo
echo "trace_overhead.sh: $rounds rounds; each runs every measure without viaudit and traced"
echo "(which goes first alternates); each process prints the median of $repeats loops"
for ((round = 1; round <= rounds; round++)); do
	for measure in "${measures[@]}"; do
		if ((round % 2)); then modes=(plain traced); else modes=(traced plain); fi
		for mode in "${modes[@]}"; do
			if [[ $mode == plain ]]; then
				result=$("$bench/bench_calls" -r "$repeats" "$measure" "${count[$measure]}") ||
					die "bench_calls $measure failed"
			else
				result=$(traced "$bench/bench_calls" -r "$repeats" "$measure" "${count[$measure]}") ||
					die "bench_calls $measure failed under tracing"
			fi
			calls_ns "$mode" "$result" >>"$work/$measure.$mode"
		done
	done
done
for measure in "${measures[@]}"; do
	paste "$work/$measure.plain" "$work/$measure.traced" | awk '{ print $2 - $1 }' >"$work/$measure.difference"
	printf '    %-8s plain  ns/call by round: %s\n' "$measure" "$(tr '\n' ' ' <"$work/$measure.plain")"
	printf '    %-8s traced ns/call by round: %s\n' "$measure" "$(tr '\n' ' ' <"$work/$measure.traced")"
done

# --- instructions per call of the untraced calls, under callgrind ------------------------------
# Instructions per call of the untraced calls, from two loop lengths (bench_lib.sh).
instructions=no
echo
if ! command -v valgrind >/dev/null; then
	echo "trace_overhead.sh: no instruction counts: valgrind is not installed"
elif ! callgrind_count traced getppid "$short" >/dev/null 2>&1; then
	echo "trace_overhead.sh: no instruction counts: callgrind cannot run bench_calls under LD_AUDIT"
else
	instructions=yes
	echo "trace_overhead.sh: instructions per call with callgrind (loops of $short and $long calls, differenced)"
	for measure in "${measures[@]}"; do
		for mode in plain traced; do
			value=$(per_call callgrind_count "$mode" "$measure") || die "callgrind failed on $measure ($mode)"
			echo "$value" >"$work/$measure.$mode.instructions"
			printf '    %-8s %-7s %s instructions/call\n' "$measure" "$mode" "$value"
		done
	done
fi

# --- the table -------------------------------------------------------------------------------------
echo
echo "trace_overhead.sh: results ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, kernel $(uname -r))"
echo "  load average at end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "  plain, traced: medians over $rounds rounds; difference: median of per-round differences;"
echo "  ratio: traced / plain"
printf '%-44s %12s %12s %12s %8s\n' measure plain traced difference ratio
for measure in "${measures[@]}"; do
	plain=$(median <"$work/$measure.plain")
	traced_ns=$(median <"$work/$measure.traced")
	difference=$(median <"$work/$measure.difference")
	printf '%-44s %12s %12s %12s %8s\n' "${label[$measure]}" "$(printf '%.1f ns' "$plain")" \
		"$(printf '%.1f ns' "$traced_ns")" "$(printf '%+.1f ns' "$difference")" \
		"$(printf '%.3f' "$(calc "$traced_ns / $plain")")"
done
if [[ $instructions == yes ]]; then
	for measure in "${measures[@]}"; do
		plain=$(cat "$work/$measure.plain.instructions")
		traced_i=$(cat "$work/$measure.traced.instructions")
		printf '%-44s %12s %12s %12s %8s\n' "${measure}(): instructions/call" "$(printf '%.1f' "$plain")" \
			"$(printf '%.1f' "$traced_i")" "$(printf '%+.1f' "$(calc "$traced_i - $plain")")" \
			"$(printf '%.3f' "$(calc "$traced_i / $plain")")"
	done
fi
