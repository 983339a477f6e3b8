# Bash functions shared by overhead.sh and trace_overhead.sh (sourced, not run).
#
# The sourcing script defines `die MESSAGE`, and sets `work` (a scratch directory), `bench`
# (where bench_calls is built), the array `loop` (measure -> loop function, for callgrind),
# BENCH_MEASURED (the name of the mode run the measured way: viaudit, traced) and
# BENCH_WRAP (the function that runs a command that way).

# median: the median of the numbers on stdin, one a line; fails on no input.
median() {
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) exit 1
			if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]
			else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

# quartiles: the lower quartile, median and upper quartile of the numbers on stdin (nearest
# rank), as "Q1 MEDIAN Q3"; a measure of how far one round's difference can be trusted.
quartiles() {
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) exit 1
			q1 = int((NR + 3) / 4); q3 = NR + 1 - q1
			printf "%.2f %.2f %.2f\n", v[q1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[q3]
		}'
}

# calc EXPRESSION: evaluates an awk expression, e.g. calc '1.5 * 2'.
calc() {
	awk "BEGIN { printf \"%.6f\n\", $1 }"
}

# calls_ns MODE OUTPUT: the ns per call of bench_calls' OUTPUT, after checking that the
# audit module was in the process exactly when MODE is the measured one.
calls_ns() {
	local expected=absent
	[[ $1 == "$BENCH_MEASURED" ]] && expected=mapped
	[[ $2 =~ ^ns_per_call=([0-9.]+)\ libviaudit=([a-z]+)$ ]] || die "bench_calls printed '$2'"
	[[ ${BASH_REMATCH[2]} == "$expected" ]] ||
		die "in a $1 run the audit module is ${BASH_REMATCH[2]}, not $expected"
	echo "${BASH_REMATCH[1]}"
}

# bench_run MODE COMMAND...: runs COMMAND, the measured way when MODE is the measured one.
bench_run() {
	local mode=$1
	shift
	if [[ $mode == "$BENCH_MEASURED" ]]; then
		"$BENCH_WRAP" "$@"
	else
		"$@"
	fi
}

# Instructions per call are taken at two loop lengths and differenced, so that the warm-up
# and the one-time binding of the PLT slot (la_symbind64 included) cancel out.
short=1000
long=11000

# callgrind_count MODE MEASURE CALLS: instructions executed inside the loop function.
callgrind_count() {
	local out=$work/callgrind.$1.$2.$3 result
	result=$(bench_run "$1" valgrind --tool=callgrind --callgrind-out-file="$out" \
		"--toggle-collect=${loop[$2]}" "$bench/bench_calls" -r 1 "$2" "$3" 2>"$out.stderr") ||
		return 1
	calls_ns "$1" "$result" >/dev/null || exit 1
	awk '$1 == "totals:" { print $2 }' "$out"
}

# per_call COUNTER MODE MEASURE: instructions per call, from two loop lengths.
per_call() {
	local a b
	a=$("$1" "$2" "$3" "$short") && b=$("$1" "$2" "$3" "$long") && [[ -n $a && -n $b ]] ||
		return 1
	calc "($b - $a) / ($long - $short)"
}
