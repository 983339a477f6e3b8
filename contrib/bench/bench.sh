#!/bin/bash
# Measures the same-host transport (issue 4 item 7) for BENCHMARKS.md: `viaudit bench`, then
# redis-benchmark and sockperf with and without viaudit side by side in one run, as Markdown.
#
# usage: bench.sh BUILD_DIR [--quick] [--plot FILE.png] [-o FILE.md]
#
# BUILD_DIR is a meson build directory with audit/libviaudit.so and contrib/cli/viaudit built.
# The figures go to stdout (and to FILE.md with -o), ready to paste into the "Same-host
# transport" section of BENCHMARKS.md; progress goes to stderr. --quick makes every part
# short (about 30 s in all, instead of about 2 minutes); --plot passes FILE.png to
# `viaudit bench --plot`.
#
# redis-benchmark: a redis-server without viaudit and one under it (policy: 127.0.0.0/8 auto),
# each measured by a client like it, the two alternating, median of the rounds; the targets
# are GET at least 5x TCP with -c 1 and 2x with -c 50. sockperf: ping-pong (64 B) and
# throughput (1 KiB), the same way. The servers and clients run under `viaudit run`, whose
# conns log says which transport carried them.
#
# Knobs (environment): VIAUDIT_BENCH_REDIS_ROUNDS (default 3; 1 with --quick),
# VIAUDIT_BENCH_REDIS_REQUESTS (default 50000; 10000 with --quick).
#
# Exits 0 once the figures are printed, met or not; 1 when it could not measure (a program
# missing, a server not starting, `viaudit bench` failing); 2 on bad usage.
set -euo pipefail

die() {
	echo "bench.sh: could not measure: $*" >&2
	exit 1
}
usage() {
	echo "usage: bench.sh BUILD_DIR [--quick] [--plot FILE.png] [-o FILE.md]" >&2
	exit 2
}
say() {
	echo "bench.sh: $*" >&2
}

[[ $# -ge 1 ]] || usage
build=$(realpath "$1") || die "no build directory $1"
shift
quick=0 plot='' output=''
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) quick=1 ;;
	--plot) [[ $# -ge 2 ]] || usage; plot=$(realpath -m "$2"); shift ;;
	-o) [[ $# -ge 2 ]] || usage; output=$(realpath -m "$2"); shift ;;
	*) usage ;;
	esac
	shift
done
here=$(cd "$(dirname "$0")" && pwd)
viaudit=$build/contrib/cli/viaudit
[[ -x $viaudit ]] || die "$viaudit is not built (ninja -C $build)"
[[ -f $build/audit/libviaudit.so ]] || die "$build/audit/libviaudit.so is not built"
for command in redis-server redis-benchmark redis-cli sockperf python3; do
	command -v "$command" >/dev/null ||
		die "$command is not installed (apt-get install redis-server redis-tools sockperf)"
done
if [[ $quick == 1 ]]; then
	rounds=${VIAUDIT_BENCH_REDIS_ROUNDS:-1} requests=${VIAUDIT_BENCH_REDIS_REQUESTS:-10000}
	sockperf_seconds=1
else
	rounds=${VIAUDIT_BENCH_REDIS_ROUNDS:-3} requests=${VIAUDIT_BENCH_REDIS_REQUESTS:-50000}
	sockperf_seconds=3
fi

# meson test and the caller's shell set these for their own ends; they would change what is
# measured (MALLOC_PERTURB_ fills every allocation) or which module is loaded.
unset LD_AUDIT LD_PRELOAD MALLOC_PERTURB_ MALLOC_CHECK_
for name in $(compgen -e | grep '^VIAUDIT_' || true); do
	[[ $name == VIAUDIT_BENCH_* ]] || unset "$name"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-samehost.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
policy=$work/samehost.policy
echo 'route * tcp 127.0.0.0/8:* auto' >"$policy"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# under_viaudit LOG COMMAND...: COMMAND under `viaudit run`, its conns log into LOG.
under_viaudit() {
	local log=$1
	shift
	VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$log" "$viaudit" run -p "$policy" -- "$@"
}

# start_server NAME MODE COMMAND... (MODE plain or viaudit; @PORT in COMMAND is replaced):
# starts COMMAND in the background on a free port and waits until it listens; sets PORT.
start_server() {
	local name=$1 mode=$2 args=() arg tries
	shift 2
	PORT=$(free_port)
	for arg in "$@"; do
		args+=("${arg//@PORT/$PORT}")
	done
	if [[ $mode == viaudit ]]; then
		: >"$work/$name.conns"
		timeout -k 5 900 env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$work/$name.conns" \
			"$viaudit" run -p "$policy" -- "${args[@]}" >"$work/$name.out" 2>&1 &
	else
		timeout -k 5 900 "${args[@]}" >"$work/$name.out" 2>&1 &
	fi
	pids+=($!)
	for ((tries = 0; tries < 200; tries++)); do
		# A probe connection would show in the viaudit server's conns log as a peer without
		# viaudit, so the test for "listening" is the kernel's table, not a connect.
		if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
			return 0
		fi
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	cat "$work/$name.out" >&2
	die "the $name server did not start"
}

# carrier LOG PORT: which transport the conns LOG says carried the connections to PORT.
carrier() {
	local transports
	transports=$(grep -Eo "peer=127\\.0\\.0\\.1:$2 transport=[a-z]+" "$1" | sed 's/.*transport=//' |
		sort -u | tr '\n' ' ')
	case $transports in
	"shm ") echo "viaudit shm" ;;
	"") echo "viaudit (not routed)" ;;
	"tcp ") echo "viaudit (tcp fallback: $(grep -Eo "peer=127\\.0\\.0\\.1:$2 transport=tcp \\([^)]*\\)" "$1" |
		head -n 1 | sed 's/.*transport=tcp (//; s/)$//'))" ;;
	*) echo "viaudit (mixed: $transports)" ;;
	esac
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

met() {
	awk -v r="$1" -v goal="$2" -v carrier="$3" \
		'BEGIN { print (r != "-" && r + 0 >= goal + 0 && carrier == "viaudit shm") ? "yes" : "no" }'
}

# --- the machine ---------------------------------------------------------------------------
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=''
if git -C "$here" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
	dirty=" plus uncommitted changes"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
out=$work/fragment.md
{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on commit \`$commit\`$dirty: $(nproc) CPUs ($cpu),"
	echo "kernel \`$(uname -r)\`, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start."
	echo "Command: \`bash contrib/bench/bench.sh BUILD$([[ $quick == 1 ]] && echo ' --quick')$([[ -n $plot ]] && echo ' --plot FILE.png')\`."
	echo
} >"$out"

# --- viaudit bench ---------------------------------------------------------------------------
say "viaudit bench$([[ $quick == 1 ]] && echo ' --quick') (about $([[ $quick == 1 ]] && echo 10 || echo 60) s)"
bench_args=()
[[ $quick == 1 ]] && bench_args+=(--quick)
[[ -n $plot ]] && bench_args+=(--plot "$plot")
status=0
"$viaudit" bench "${bench_args[@]}" >"$work/bench.txt" || status=$?
{
	echo "\`viaudit bench${bench_args[*]:+ ${bench_args[*]}}\` (ping-pong and streaming between two processes):"
	echo
	echo '```'
	cat "$work/bench.txt"
	echo '```'
	echo
} >>"$out"
[[ $status == 0 ]] || die "viaudit bench exited with status $status (its output: $work/bench.txt)"

# --- redis-benchmark ------------------------------------------------------------------------
say "redis-benchmark GET, $requests requests, -c 1 and -c 50, $rounds round(s), plain and viaudit alternating"
redis_args=(redis-server --port @PORT --bind 127.0.0.1 --save '' --appendonly no --dir "$work")
start_server redis-plain plain "${redis_args[@]}"
plain_port=$PORT
start_server redis-viaudit viaudit "${redis_args[@]}"
viaudit_port=$PORT
: >"$work/redis-client.conns"
declare -A redis
for clients in 1 50; do
	for ((round = 0; round < rounds; round++)); do
		for mode in plain viaudit; do
			cmd=(redis-benchmark -h 127.0.0.1 -t get -n "$requests" -q -c "$clients")
			if [[ $mode == plain ]]; then
				timeout 120 "${cmd[@]}" -p "$plain_port" >"$work/r.out" 2>&1 ||
					die "redis-benchmark (plain) failed: $(cat "$work/r.out")"
			else
				timeout 120 env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$work/redis-client.conns" \
					"$viaudit" run -p "$policy" -- "${cmd[@]}" -p "$viaudit_port" \
					>"$work/r.out" 2>&1 ||
					die "redis-benchmark (viaudit) failed: $(cat "$work/r.out")"
			fi
			rps=$(tr '\r' '\n' <"$work/r.out" | sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
			[[ -n $rps ]] || die "no GET figure from redis-benchmark: $(cat "$work/r.out")"
			redis[$mode-$clients]+="$rps "
		done
	done
done
redis_carrier=$(carrier "$work/redis-client.conns" "$viaudit_port")
{
	echo "redis-benchmark \`-t get -n $requests -q\`, GET requests per second, median of $rounds"
	echo "round(s), a redis-server without viaudit and one under it alternating; the viaudit"
	echo "connections were carried by: **$redis_carrier**."
	echo
	echo "| clients | kernel TCP | viaudit | x TCP | target | met? |"
	echo "| --- | ---: | ---: | ---: | ---: | --- |"
	for clients in 1 50; do
		plain=$(tr ' ' '\n' <<<"${redis[plain-$clients]}" | grep . | median)
		via=$(tr ' ' '\n' <<<"${redis[viaudit-$clients]}" | grep . | median)
		r=$(ratio "$via" "$plain")
		goal=$([[ $clients == 1 ]] && echo 5 || echo 2)
		echo "| $clients | $plain | $via | ${r}x | ${goal}x | $(met "$r" "$goal" "$redis_carrier") |"
	done
	echo
	echo "Every round (plain / viaudit): -c 1: ${redis[plain-1]}/ ${redis[viaudit-1]}; -c 50: ${redis[plain-50]}/ ${redis[viaudit-50]}"
	echo
} >>"$out"

# --- sockperf -------------------------------------------------------------------------------
say "sockperf ping-pong (64 B) and throughput (1 KiB), ${sockperf_seconds} s each, plain and viaudit"
start_server sockperf-plain plain sockperf server --tcp -i 127.0.0.1 -p @PORT
sp_plain=$PORT
start_server sockperf-viaudit viaudit sockperf server --tcp -i 127.0.0.1 -p @PORT
sp_viaudit=$PORT
: >"$work/sockperf-client.conns"
declare -A sp
for mode in plain viaudit; do
	for test in ping-pong throughput; do
		size=$([[ $test == ping-pong ]] && echo 64 || echo 1024)
		cmd=(sockperf "$test" --tcp -i 127.0.0.1 -t "$sockperf_seconds" -m "$size")
		# At --mps=max, shm round trips outrun the sample table sockperf sizes for itself
		# ("_seqN > m_maxSequenceNo"); 500000 a second is far above kernel TCP here.
		[[ $test == ping-pong ]] && cmd+=(--mps=500000)
		if [[ $mode == plain ]]; then
			timeout 60 "${cmd[@]}" -p "$sp_plain" >"$work/s.out" 2>&1 ||
				die "sockperf $test (plain) failed: $(tail -n 5 "$work/s.out")"
		else
			timeout 60 env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$work/sockperf-client.conns" \
				"$viaudit" run -p "$policy" -- "${cmd[@]}" -p "$sp_viaudit" >"$work/s.out" 2>&1 ||
				die "sockperf $test (viaudit) failed: $(tail -n 5 "$work/s.out")"
		fi
		sed -i 's/\x1b\[[0-9;]*m//g' "$work/s.out"
		if [[ $test == ping-pong ]]; then
			sp[$mode-p50]=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' "$work/s.out")
			sp[$mode-p99]=$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' "$work/s.out")
		else
			sp[$mode-rate]=$(sed -n 's/.*Message Rate is \([0-9]*\).*/\1/p' "$work/s.out")
			sp[$mode-mbps]=$(sed -n 's/.*BandWidth is \([0-9.]*\) MBps.*/\1/p' "$work/s.out")
		fi
	done
done
sp_carrier=$(carrier "$work/sockperf-client.conns" "$sp_viaudit")
{
	echo "sockperf, ${sockperf_seconds} s per test (its latency is half the round trip, in us);"
	echo "the viaudit connections were carried by: **$sp_carrier**."
	echo
	echo "| sockperf | kernel TCP | viaudit | x TCP (above 1: viaudit better) |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| ping-pong 64 B, latency p50 (us) | ${sp[plain-p50]} | ${sp[viaudit-p50]} | $(ratio "${sp[plain-p50]}" "${sp[viaudit-p50]}")x |"
	echo "| ping-pong 64 B, latency p99 (us) | ${sp[plain-p99]} | ${sp[viaudit-p99]} | $(ratio "${sp[plain-p99]}" "${sp[viaudit-p99]}")x |"
	echo "| throughput 1 KiB, messages/s | ${sp[plain-rate]} | ${sp[viaudit-rate]} | $(ratio "${sp[viaudit-rate]}" "${sp[plain-rate]}")x |"
	echo "| throughput 1 KiB, MB/s | ${sp[plain-mbps]} | ${sp[viaudit-mbps]} | $(ratio "${sp[viaudit-mbps]}" "${sp[plain-mbps]}")x |"
	echo
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >>"$out"

cat "$out"
[[ -z $output ]] || cp "$out" "$output"
