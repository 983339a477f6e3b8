#!/bin/bash
# Measures what the audit module costs a program, each figure side by side with the same run
# without it (issue 3 item 9): start-up time, calls viaudit does not route, and a routed write.
#
# usage: overhead.sh BUILD_DIR
#
# BUILD_DIR is a meson build directory with audit/libviaudit.so and contrib/bench/ built.
# Runs with and without LD_AUDIT alternate, so that the drift of a noisy machine hits both
# alike; every figure is a median of per-round medians, and every difference the median of
# the per-round differences. Instruction counts come from valgrind's callgrind, which counts
# the same on a busy machine as on an idle one.
#
# Knobs (environment):
#   VIAUDIT_BENCH_SPAWNS   start-ups per mode (default 1000)
#   VIAUDIT_BENCH_ROUNDS   rounds of the call loops (default 31)
#   VIAUDIT_BENCH_REPEATS  timed loops per process, of which the median counts (default 7)
#
# Exits 0 once the table is printed, whether or not each goal is met: this is a measurement,
# not a pass/fail test. Exits 1 when it could not measure (a program missing, the audit module
# not loading, the calls not routed as the benchmark needs), 2 on bad usage.
set -euo pipefail

die() {
	echo "overhead.sh: could not measure: $*" >&2
	exit 1
}

[[ $# == 1 ]] || {
	echo "usage: overhead.sh BUILD_DIR" >&2
	exit 2
}
build=$(realpath "$1") || die "no build directory $1"
here=$(cd "$(dirname "$0")" && pwd)
bench=$build/contrib/bench
module=$build/audit/libviaudit.so
policy=$here/bench.policy
spawns=${VIAUDIT_BENCH_SPAWNS:-1000}
rounds=${VIAUDIT_BENCH_ROUNDS:-31}
repeats=${VIAUDIT_BENCH_REPEATS:-7}

for file in "$bench/bench_calls" "$bench/bench_spawn" "$bench/bench_true"; do
	[[ -x $file ]] || die "$file is not built (ninja -C $build)"
done
[[ -f $module ]] || die "$module is not built (ninja -C $build)"
[[ -f $policy ]] || die "no policy $policy"

# meson test sets these for its own ends; they would change what is timed (MALLOC_PERTURB_
# fills every allocation) or where the libraries come from (the programs use their RUNPATH).
unset LD_AUDIT LD_PRELOAD LD_LIBRARY_PATH LD_BIND_NOW MALLOC_PERTURB_ MALLOC_CHECK_
for name in $(compgen -e | grep '^VIAUDIT_' || true); do
	[[ $name == VIAUDIT_BENCH_* ]] || unset "$name"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# with_audit [VAR=VALUE...] COMMAND...: runs COMMAND under the audit module and the benchmark
# policy, with the extra settings.
with_audit() {
	env LD_AUDIT="$module" VIAUDIT_POLICY="$policy" "$@"
}

BENCH_MEASURED=viaudit
BENCH_WRAP=with_audit
# shellcheck source=bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"

# The measures of the call loops: bench_calls' name, calls per timed loop, the loop function
# (for callgrind), and the label of the table.
measures=(getppid strlen bind write)
declare -A count=([getppid]=100000 [strlen]=5000000 [bind]=100000 [write]=100000)
declare -A loop=([getppid]=bench_unselected_getppid [strlen]=bench_unselected_strlen
	[bind]=bench_unselected_bind [write]=bench_selected_write)
declare -A label=(
	[getppid]='getppid(), unselected object, not routed'
	[strlen]='strlen(), unselected object, not routed'
	[bind]='bind(-1) EBADF, unselected object, not routed'
	[write]='write(/dev/null, 1 B), selected object, routed')
declare -A call=([getppid]='getppid()' [strlen]='strlen()' [bind]='bind(-1)' [write]='write()')

load_at_start=$(cut -d ' ' -f 1-3 /proc/loadavg)

# --- premises: the module loads, and routes exactly what the benchmark relies on ---------------
echo "overhead.sh: module $module"
echo "overhead.sh: policy $policy"
if ! output=$(with_audit "$bench/bench_true" 2>&1); then
	die "bench_true fails under LD_AUDIT: $output"
fi
# Without VIAUDIT_LOG the module prints only errors, and ld.so only a module it cannot use.
[[ -z $output ]] || die "bench_true prints under LD_AUDIT: $output"
: >"$work/routes.log"
for measure in "${measures[@]}"; do
	with_audit VIAUDIT_LOG=routes VIAUDIT_LOG_FILE="$work/routes.log" \
		"$bench/bench_calls" -r 1 "$measure" 10 >/dev/null 2>"$work/stderr" ||
		die "bench_calls $measure fails under LD_AUDIT: $(cat "$work/stderr")"
	"$bench/bench_calls" -r 1 "$measure" 10 >/dev/null || die "bench_calls $measure fails"
done
grep -Eq '^viaudit: routes: libbench_selected\.so write (plt|got) -> viaudit \(fd call\)$' "$work/routes.log" ||
	die "libbench_selected.so's write is not routed to viaudit; routes log:
$(cat "$work/routes.log")"
if grep -E '^viaudit: routes: libbench_unselected\.so (getppid|strlen|bind) .*-> viaudit' "$work/routes.log"; then
	die "libbench_unselected.so's calls are routed to viaudit, so they cannot show what unrouted calls cost"
fi
echo "overhead.sh: routes log of the call loops (premise: only write from the selected object is routed):"
grep -E '^viaudit: routes: libbench_(un)?selected\.so ' "$work/routes.log" | sed 's/^/    /'

# --- 1. start-up --------------------------------------------------------------------------
: >"$work/empty.policy"
echo
echo "overhead.sh: start-up: $spawns starts of bench_true per mode, modes in turn"
"$bench/bench_spawn" -n "$spawns" -r 10 \
	-m plain \
	-m viaudit -e "LD_AUDIT=$module" -e "VIAUDIT_POLICY=$policy" \
	-m empty -e "LD_AUDIT=$module" -e "VIAUDIT_POLICY=$work/empty.policy" \
	"$bench/bench_true" >"$work/spawn" || die "bench_spawn failed"
sed 's/^/    /' "$work/spawn"

# spawn_field MODE FIELD: a field of bench_spawn's line for MODE, in ms.
spawn_field() {
	local value
	value=$(awk -v mode="mode=$1" -v field="$2=" '$1 == mode {
		for (i = 2; i <= NF; i++) if (index($i, field) == 1) print substr($i, length(field) + 1)
	}' "$work/spawn")
	[[ -n $value ]] || die "bench_spawn printed no $2 for $1"
	calc "$value / 1e6"
}

# --- 2 and 3. call loops, timed -------------------------------------------------------------
echo
echo "overhead.sh: call loops: $rounds rounds; each round runs every measure without and with"
echo "viaudit (which goes first alternates); each process prints the median of $repeats loops"
for ((round = 1; round <= rounds; round++)); do
	for measure in "${measures[@]}"; do
		if ((round % 2)); then modes=(plain viaudit); else modes=(viaudit plain); fi
		for mode in "${modes[@]}"; do
			if [[ $mode == plain ]]; then
				result=$("$bench/bench_calls" -r "$repeats" "$measure" "${count[$measure]}") ||
					die "bench_calls $measure failed"
			else
				result=$(with_audit "$bench/bench_calls" -r "$repeats" "$measure" "${count[$measure]}") ||
					die "bench_calls $measure failed under LD_AUDIT"
			fi
			ns=$(calls_ns "$mode" "$result") || exit 1
			echo "$ns" >>"$work/$measure.$mode"
		done
	done
done
for measure in "${measures[@]}"; do
	paste "$work/$measure.plain" "$work/$measure.viaudit" | awk '{ print $2 - $1 }' >"$work/$measure.difference"
	printf '    %-8s plain      ns/call by round: %s\n' "$measure" "$(tr '\n' ' ' <"$work/$measure.plain")"
	printf '    %-8s viaudit    ns/call by round: %s\n' "$measure" "$(tr '\n' ' ' <"$work/$measure.viaudit")"
	printf '    %-8s difference quartiles (ns): %s\n' "$measure" "$(quartiles <"$work/$measure.difference")"
done

# --- instructions per call, under callgrind ---------------------------------------------------
# Each count is taken at two loop lengths and differenced (bench_lib.sh).
instructions_tool=none
instructions_note=

# perf_count MODE MEASURE CALLS: user-space instructions of the whole process.
perf_count() {
	local out=$work/perf.$1.$2.$3
	local command=(perf stat -x "," -e instructions:u -o "$out" "$bench/bench_calls" -r 1 "$2" "$3")
	local result
	if [[ $1 == viaudit ]]; then
		result=$(with_audit "${command[@]}" 2>/dev/null) || return 1
	else
		result=$("${command[@]}" 2>/dev/null) || return 1
	fi
	calls_ns "$1" "$result" >/dev/null || exit 1
	awk -F, '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ { print $1 }' "$out"
}

echo
if ! command -v valgrind >/dev/null; then
	instructions_note="valgrind is not installed (apt-get install valgrind)"
elif ! probe=$(callgrind_count viaudit write "$short" 2>&1); then
	instructions_note="valgrind --tool=callgrind failed with LD_AUDIT set: $probe $(tail -n 3 "$work/callgrind.viaudit.write.$short.stderr" | tr '\n' ' ')"
else
	instructions_tool=callgrind
fi
if [[ $instructions_tool == none ]] && command -v perf >/dev/null; then
	if perf_count plain write "$short" | grep -q .; then
		instructions_tool=perf
		instructions_note="$instructions_note; using perf stat -e instructions:u"
	else
		instructions_note="$instructions_note; perf stat -e instructions:u is not supported here"
	fi
fi
if [[ $instructions_tool != none ]]; then
	echo "overhead.sh: instructions per call with $instructions_tool (loops of $short and $long calls, differenced)"
	for measure in "${measures[@]}"; do
		for mode in plain viaudit; do
			if [[ $instructions_tool == callgrind ]]; then
				value=$(per_call callgrind_count "$mode" "$measure") ||
					die "callgrind failed on $measure ($mode)"
			else
				value=$(per_call perf_count "$mode" "$measure") ||
					die "perf stat failed on $measure ($mode)"
			fi
			echo "$value" >"$work/$measure.$mode.instructions"
			printf '    %-8s %-8s %s instructions/call\n' "$measure" "$mode" "$value"
		done
	done
else
	echo "overhead.sh: no instruction counts: ${instructions_note#; }; timing only"
fi

# --- the table ----------------------------------------------------------------------------
rows=()
# row MEASURE PLAIN VIAUDIT DIFFERENCE RATIO GOAL MET
row() {
	rows+=("$(printf '%-48s %12s %12s %12s %7s %14s %5s' "$@")")
}

# met CONDITION: yes or no, for an awk condition.
met() {
	awk "BEGIN { print (($1) ? \"yes\" : \"no\") }"
}

missed=()
plain=$(spawn_field plain round_median_ns)
viaudit=$(spawn_field viaudit round_median_ns)
difference=$(spawn_field viaudit diff_round_median_ns)
verdict=$(met "$difference <= 2")
[[ $verdict == yes ]] || missed+=("start-up")
row "start-up of a trivial program (median)" "$(printf '%.3f ms' "$plain")" \
	"$(printf '%.3f ms' "$viaudit")" "$(printf '%+.3f ms' "$difference")" \
	"$(printf '%.2f' "$(calc "$viaudit / $plain")")" "<= 2 ms added" "$verdict"
plain=$(spawn_field plain mean_ns)
viaudit=$(spawn_field viaudit mean_ns)
row "start-up of a trivial program (mean)" "$(printf '%.3f ms' "$plain")" \
	"$(printf '%.3f ms' "$viaudit")" "$(printf '%+.3f ms' "$(calc "$viaudit - $plain")")" \
	"$(printf '%.2f' "$(calc "$viaudit / $plain")")" "info" "-"
plain=$(spawn_field plain round_median_ns)
viaudit=$(spawn_field empty round_median_ns)
difference=$(spawn_field empty diff_round_median_ns)
row "start-up, LD_AUDIT + empty policy (median)" "$(printf '%.3f ms' "$plain")" \
	"$(printf '%.3f ms' "$viaudit")" "$(printf '%+.3f ms' "$difference")" \
	"$(printf '%.2f' "$(calc "$viaudit / $plain")")" "info" "-"

for measure in "${measures[@]}"; do
	plain=$(median <"$work/$measure.plain")
	viaudit=$(median <"$work/$measure.viaudit")
	difference=$(median <"$work/$measure.difference")
	ratio=$(calc "1 + $difference / $plain")
	if [[ $measure == write ]]; then
		goal="<= 5 ns added"
		verdict=$(met "$difference <= 5")
	else
		goal="within 2 %"
		verdict=$(met "$ratio >= 0.98 && $ratio <= 1.02")
	fi
	[[ $verdict == yes ]] || missed+=("$measure (time)")
	row "${label[$measure]}" "$(printf '%.2f ns' "$plain")" "$(printf '%.2f ns' "$viaudit")" \
		"$(printf '%+.2f ns' "$difference")" "$(printf '%.3f' "$ratio")" "$goal" "$verdict"
done
if [[ $instructions_tool != none ]]; then
	for measure in "${measures[@]}"; do
		plain=$(cat "$work/$measure.plain.instructions")
		viaudit=$(cat "$work/$measure.viaudit.instructions")
		difference=$(calc "$viaudit - $plain")
		ratio=$(calc "$viaudit / $plain")
		if [[ $measure == write ]]; then
			goal="info"
			verdict="-"
		else
			goal="within 2 %"
			verdict=$(met "$ratio >= 0.98 && $ratio <= 1.02")
			[[ $verdict == yes ]] || missed+=("$measure (instructions)")
		fi
		row "${call[$measure]}: instructions/call ($instructions_tool)" "$(printf '%.1f' "$plain")" \
			"$(printf '%.1f' "$viaudit")" "$(printf '%+.1f' "$difference")" \
			"$(printf '%.3f' "$ratio")" "$goal" "$verdict"
	done
fi

echo
echo "overhead.sh: results ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, kernel $(uname -r), $(ldd --version | head -n 1 | sed 's/.* //' | sed 's/^/glibc /'))"
echo "  load average at start: $load_at_start; at end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "  plain, viaudit: medians over $rounds rounds (start-up: over 10 rounds of $((spawns / 10)) starts); on a loaded"
echo "  machine they move with the load. difference: median of the per-round differences, each"
echo "  between two adjacent runs: the figure to trust. ratio: 1 + difference / plain for call"
echo "  times; viaudit / plain for start-up and instructions"
printf '%-48s %12s %12s %12s %7s %14s %5s\n' measure plain viaudit difference ratio goal met?
for line in "${rows[@]}"; do
	echo "$line"
done
if [[ $instructions_tool == none ]]; then
	echo "(no instruction counts: ${instructions_note#; })"
elif [[ -n $instructions_note ]]; then
	echo "(instruction counts: ${instructions_note#; })"
fi
if ((${#missed[@]})); then
	echo "overhead.sh: goals missed: ${missed[*]} (a measurement, not a failure: exit 0)"
else
	echo "overhead.sh: every goal met"
fi
