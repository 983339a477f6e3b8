#!/bin/bash
# Measures PostgreSQL pgbench -S TPS over viaudit shm, kernel TCP loopback and the Unix socket
# in one run, interleaved (issue 5 item 6), and checks that the viaudit rounds used shm.
#
# usage: pgbench.sh BUILD_DIR [--quick] [--json] [-T SECONDS] [-c CLIENTS] [-j THREADS]
#                   [--rounds N] [-s SCALE] [--connect] [--spin-us US]
#
# One cluster: initdb in a temporary directory (fsync=off), pgbench -i -s SCALE once, then a
# copy of its data directory, so that two servers serve the same data: one plain (no viaudit
# anywhere in it) on 127.0.0.1 and its Unix socket, one under `viaudit run` on 127.0.0.1 with
# `set door_peers any` and `route * tcp 127.0.0.0/8:* shm` (as root both run as the postgres
# user, pgbench as root: the doors must accept another uid). A warm-up run on each, then
# ROUNDS rounds (default 3; 1 with --quick) of `pgbench -S -c CLIENTS -j THREADS -T SECONDS`
# (default 8, 2, 10; -T 3 with --quick) against each transport in turn, the order rotated
# each round:
#   tcp      plain pgbench -> plain server, -h 127.0.0.1
#   viaudit  pgbench under viaudit -> the viaudit server, -h 127.0.0.1 (carried by shm)
#   unix     plain pgbench -> plain server, -h SOCKET_DIR
# Figure: the median TPS of the rounds per transport ("without initial connection time";
# with --connect, "including reconnection times"), and
# the ratios viaudit/tcp (target: at least 1.5) and viaudit/unix. --connect adds pgbench -C
# (a new connection, hence a postmaster fork, per transaction) to every run; --spin-us adds
# `set spin_us US` to the viaudit policy (how long a reader spins before it sleeps).
#
# Checks, each fatal (exit 1, said loudly): every run reports 0 failed transactions; the
# plain postmaster has no libviaudit.so mapped and the viaudit one has (the plain pgbench runs
# with LD_AUDIT and VIAUDIT_* unset);
# every connection of a viaudit round has transport=shm in the client's conns log and in the
# server's line for the same connection. When the build logs fork handoffs
# (`conns: fd=N handoff ... us=Z`), their count and median us are reported.
#
# Exits 0 once the figures are printed, target met or not; 1 when it could not measure or a
# check failed; 2 on bad usage.
set -euo pipefail

die() {
	echo "pgbench.sh: could not measure: $*" >&2
	exit 1
}
usage() {
	echo "usage: pgbench.sh BUILD_DIR [--quick] [--json] [-T SECONDS] [-c CLIENTS] [-j THREADS] [--rounds N] [-s SCALE] [--connect] [--spin-us US]" >&2
	exit 2
}
say() {
	echo "pgbench.sh: $*" >&2
}

[[ $# -ge 1 ]] || usage
build=$(realpath "$1") || die "no build directory $1"
shift
quick=0 json=0 seconds='' clients=8 threads=2 rounds='' scale=1 connect=0 spin_us=''
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) quick=1 ;;
	--json) json=1 ;;
	-T) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; seconds=$2; shift ;;
	-c) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; clients=$2; shift ;;
	-j) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; threads=$2; shift ;;
	-s) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; scale=$2; shift ;;
	--rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; rounds=$2; shift ;;
	--connect) connect=1 ;;
	--spin-us) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; spin_us=$2; shift ;;
	*) usage ;;
	esac
	shift
done
if [[ $quick == 1 ]]; then
	seconds=${seconds:-3} rounds=${rounds:-1} warmup=1
else
	seconds=${seconds:-10} rounds=${rounds:-3} warmup=3
fi
viaudit=$build/contrib/cli/viaudit
module=$build/audit/libviaudit.so
[[ -x $viaudit ]] || die "$viaudit is not built (ninja -C $build)"
[[ -f $module ]] || die "$module is not built (ninja -C $build)"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
for program in initdb postgres pgbench pg_isready; do
	[[ -n $bin && -x $bin/$program ]] ||
		die "no $program under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
done
command -v python3 >/dev/null || die "python3 is not installed (it picks free ports)"

# meson test and the caller's shell set these for their own ends; the plain runs must not
# load the module, and MALLOC_PERTURB_ would change what is measured.
unset LD_AUDIT LD_PRELOAD MALLOC_PERTURB_ MALLOC_CHECK_
for name in $(compgen -e | grep '^VIAUDIT_' || true); do
	unset "$name"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-pgbench.XXXXXX")
server_jobs=() postmasters=()
cleanup() {
	local pid
	for pid in "${postmasters[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${server_jobs[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root: as root, the servers run as the postgres user.
as_db=()
if [[ $(id -u) == 0 ]]; then
	id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user"
	as_db=(runuser -u postgres --)
	chmod 755 "$work"
	chown postgres "$work"
fi
policy=$work/pgbench.policy
{
	echo 'set door_peers any'
	[[ -z $spin_us ]] || echo "set spin_us $spin_us"
	echo 'route * tcp 127.0.0.0/8:* shm'
} >"$policy"
chmod 644 "$policy"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME MODE DATA: starts a postmaster (MODE plain or viaudit) on DATA, 127.0.0.1
# and a free port, its Unix socket in $work/NAME.sock; waits until it accepts connections
# (asked over the Unix socket, so that no probe shows in the viaudit server's conns log).
# Sets PORT and SOCKET.
start_server() {
	local name=$1 mode=$2 data=$3 tries pid
	PORT=$(free_port)
	SOCKET=$work/$name.sock
	"${as_db[@]}" mkdir -p "$SOCKET"
	local cmd=("${as_db[@]}" "$bin/postgres" -D "$data" -p "$PORT" -k "$SOCKET"
		-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=$((clients + 20)))
	if [[ $mode == viaudit ]]; then
		# The postgres user writes this log.
		touch "$work/$name.conns"
		chmod 666 "$work/$name.conns"
		env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$work/$name.conns" \
			"$viaudit" run -p "$policy" -- "${cmd[@]}" >"$work/$name.out" 2>&1 &
	else
		"${cmd[@]}" >"$work/$name.out" 2>&1 &
	fi
	server_jobs+=($!)
	for ((tries = 0; tries < 300; tries++)); do
		if [[ -s $data/postmaster.pid ]] &&
			"$bin/pg_isready" -q -h "$SOCKET" -p "$PORT" -U postgres 2>/dev/null; then
			pid=$(head -n 1 "$data/postmaster.pid")
			postmasters+=("$pid")
			POSTMASTER=$pid
			return 0
		fi
		kill -0 "${server_jobs[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$work/$name.out" >&2
	die "the $name server did not start"
}

# stop_server DATA: a fast shutdown of the postmaster of DATA, waited for.
stop_server() {
	local pid tries
	pid=$(head -n 1 "$1/postmaster.pid")
	kill -INT "$pid"
	for ((tries = 0; tries < 300; tries++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "the postmaster $pid did not stop"
}

# module_mapped PID: whether libviaudit.so is mapped into process PID.
module_mapped() {
	grep -q 'libviaudit\.so' "/proc/$1/maps" 2>/dev/null
}

# --- the cluster ----------------------------------------------------------------------------
say "initdb, pgbench -i -s $scale"
"${as_db[@]}" "$bin/initdb" -D "$work/data-plain" -A trust -U postgres >"$work/initdb.out" 2>&1 ||
	die "initdb failed: $(tail -n 5 "$work/initdb.out")"
start_server init plain "$work/data-plain"
"$bin/pgbench" -h "$SOCKET" -p "$PORT" -U postgres -i -s "$scale" -q postgres >"$work/init.out" 2>&1 ||
	die "pgbench -i failed: $(tail -n 5 "$work/init.out")"
stop_server "$work/data-plain"
# The same data for the viaudit server: a copy of the stopped cluster.
"${as_db[@]}" cp -a "$work/data-plain" "$work/data-viaudit"

start_server plain plain "$work/data-plain"
plain_port=$PORT plain_socket=$SOCKET plain_pid=$POSTMASTER
start_server viaudit viaudit "$work/data-viaudit"
viaudit_port=$PORT viaudit_pid=$POSTMASTER
module_mapped "$plain_pid" && die "the plain postmaster $plain_pid has libviaudit.so mapped"
module_mapped "$viaudit_pid" || die "the viaudit postmaster $viaudit_pid has no libviaudit.so mapped"
grep -Eq "^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:$viaudit_port listening transport=shm " \
	"$work/viaudit.conns" ||
	die "the viaudit server's conns log has no shm listening line for port $viaudit_port: $(head -n 3 "$work/viaudit.conns")"

# --- the runs -------------------------------------------------------------------------------
pgbench_args=(-U postgres -S -c "$clients" -j "$threads")
[[ $connect == 1 ]] && pgbench_args+=(-C)
declare -A tps

# bench TRANSPORT SECONDS NAME: one pgbench run; prints its TPS after checking it.
bench() {
	local transport=$1 time=$2 out=$work/$3.out log=$work/$3.conns status=0 failed value
	local cmd=("$bin/pgbench" "${pgbench_args[@]}" -T "$time")
	case $transport in
	tcp) timeout $((time + 120)) "${cmd[@]}" -h 127.0.0.1 -p "$plain_port" postgres >"$out" 2>&1 || status=$? ;;
	unix) timeout $((time + 120)) "${cmd[@]}" -h "$plain_socket" -p "$plain_port" postgres >"$out" 2>&1 || status=$? ;;
	viaudit)
		: >"$log"
		timeout $((time + 120)) env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$log" \
			"$viaudit" run -p "$policy" -- "${cmd[@]}" -h 127.0.0.1 -p "$viaudit_port" postgres \
			>"$out" 2>&1 || status=$?
		;;
	esac
	[[ $status == 0 ]] || die "pgbench over $transport exited with status $status: $(tail -n 5 "$out")"
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\) .*/\1/p' "$out")
	[[ -n $failed ]] || die "pgbench over $transport printed no 'number of failed transactions': $(tail -n 5 "$out")"
	[[ $failed == 0 ]] || die "FAILED TRANSACTIONS: pgbench over $transport: $failed (see $out)"
	# With -C pgbench counts the connections in: "(including reconnection times)".
	value=$(sed -En 's/^tps = ([0-9.]+) \((without initial connection time|including reconnection times)\)$/\1/p' "$out")
	[[ -n $value ]] || die "pgbench over $transport printed no tps: $(tail -n 5 "$out")"
	echo "$value"
}

say "warm-up: pgbench -S -T $warmup on each server"
bench unix "$warmup" warmup-plain >/dev/null
bench viaudit "$warmup" warmup-viaudit >/dev/null
transports=(tcp viaudit unix)
say "$rounds round(s) of pgbench -S -c $clients -j $threads -T $seconds$([[ $connect == 1 ]] && echo ' -C') over tcp, viaudit, unix (about $((rounds * 3 * (seconds + 1))) s)"
for ((round = 0; round < rounds; round++)); do
	for ((k = 0; k < 3; k++)); do
		transport=${transports[$(((round + k) % 3))]}
		value=$(bench "$transport" "$seconds" "round$round-$transport")
		say "round $((round + 1)): $transport $value tps"
		tps[$transport]+="$(printf '%.1f' "$value") "
	done
done

# --- the checks on the viaudit runs -------------------------------------------------------
# Every connection a viaudit pgbench made: shm in its own line and in the server's line.
connections=0 bad=0 first_bad=''
for log in "$work"/warmup-viaudit.conns "$work"/round*-viaudit.conns; do
	pattern="^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:([0-9]+) peer=127\\.0\\.0\\.1:$viaudit_port transport=(.*) rule=[^ ]+\$"
	while IFS= read -r line; do
		[[ $line =~ $pattern ]] || continue
		connections=$((connections + 1))
		client_port=${BASH_REMATCH[1]} transport=${BASH_REMATCH[2]}
		if [[ $transport != shm ]]; then
			bad=$((bad + 1))
			[[ -n $first_bad ]] || first_bad="client end from port $client_port: transport=$transport"
		elif ! grep -Eq "^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:$viaudit_port peer=127\\.0\\.0\\.1:$client_port transport=shm rule=" \
			"$work/viaudit.conns"; then
			bad=$((bad + 1))
			[[ -n $first_bad ]] || first_bad="server end of the connection from port $client_port: $(grep -E "peer=127\\.0\\.0\\.1:$client_port " "$work/viaudit.conns" | head -n 1 || echo 'no conns line')"
		fi
	done <"$log"
done
if [[ $connections == 0 ]]; then
	echo "pgbench.sh: NOT SHM: the viaudit pgbench runs logged no connection to port $viaudit_port" >&2
	exit 1
fi
if [[ $bad != 0 ]]; then
	echo "pgbench.sh: NOT SHM: $bad of the $connections connections of the viaudit runs were not shm at both ends; first: $first_bad" >&2
	exit 1
fi
# log_median: the median of the us= figures of the log lines on stdin, or nothing.
log_median() {
	sed -n 's/.* us=\([0-9.]*\).*/\1/p' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The server's backends log 'handoff epoch=' lines; pgbench, the peer, 'peer handed over'.
handoffs=$(grep -c 'handoff epoch=' "$work/viaudit.conns" || true)
handoff_us=$(grep 'handoff epoch=' "$work/viaudit.conns" | log_median)
handed=$(cat "$work"/warmup-viaudit.conns "$work"/round*-viaudit.conns | grep -c 'peer handed over: ' || true)
handed_us=$(cat "$work"/warmup-viaudit.conns "$work"/round*-viaudit.conns | grep 'peer handed over: ' | log_median)
module_mapped "$viaudit_pid" || die "the viaudit postmaster $viaudit_pid exited or lost its module"

# --- the figures ----------------------------------------------------------------------------
median() {
	tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
declare -A med
for transport in "${transports[@]}"; do
	med[$transport]=$(median <<<"${tps[$transport]}")
done
r_tcp=$(ratio "${med[viaudit]}" "${med[tcp]}")
r_unix=$(ratio "${med[viaudit]}" "${med[unix]}")
met=$(awk -v r="$r_tcp" 'BEGIN { print (r + 0 >= 1.5) ? "yes" : "no" }')
commit=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=''
if git -C "$(dirname "$0")" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
	dirty=" plus uncommitted changes"
fi
version=$("$bin/postgres" --version | sed 's/^postgres (PostgreSQL) //')

if [[ $json == 1 ]]; then
	rounds_json() {
		tr ' ' '\n' <<<"$1" | grep . | paste -sd, -
	}
	printf '{"benchmark":"pgbench -S","postgresql":"%s","commit":"%s%s","clients":%d,"threads":%d,"seconds":%d,"rounds":%d,"scale":%d,"connect_per_transaction":%s,"spin_us":%s,' \
		"$version" "$commit" "${dirty:++dirty}" "$clients" "$threads" "$seconds" "$rounds" "$scale" \
		"$([[ $connect == 1 ]] && echo true || echo false)" "${spin_us:-null}"
	printf '"tps":{"tcp":{"median":%s,"rounds":[%s]},"viaudit":{"median":%s,"rounds":[%s]},"unix":{"median":%s,"rounds":[%s]}},' \
		"${med[tcp]}" "$(rounds_json "${tps[tcp]}")" "${med[viaudit]}" "$(rounds_json "${tps[viaudit]}")" \
		"${med[unix]}" "$(rounds_json "${tps[unix]}")"
	printf '"ratio_viaudit_tcp":%s,"ratio_viaudit_unix":%s,"target_x_tcp":1.5,"met":%s,"failed_transactions":0,"viaudit_connections":%d,"viaudit_transport":"shm","handoff_log_lines":%d,"handoff_log_median_us":%s,"peer_handed_over_lines":%d,"peer_handed_over_median_us":%s}\n' \
		"$r_tcp" "$r_unix" "$([[ $met == yes ]] && echo true || echo false)" "$connections" "$handoffs" "${handoff_us:-null}" \
		"$handed" "${handed_us:-null}"
	exit 0
fi

echo "pgbench -S (issue 5 item 6), measured $(date -u '+%Y-%m-%d %H:%M') UTC on commit $commit$dirty,"
echo "PostgreSQL $version, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo "Command: bash contrib/bench/pgbench.sh BUILD$([[ $quick == 1 ]] && echo ' --quick') -T $seconds -c $clients -j $threads --rounds $rounds -s $scale$([[ $connect == 1 ]] && echo ' --connect')${spin_us:+ --spin-us $spin_us}"
echo "pgbench -S -c $clients -j $threads -T $seconds$([[ $connect == 1 ]] && echo ' -C'), scale $scale, fsync=off; median TPS of $rounds round(s)"
echo "(transports interleaved, order rotated each round); 0 failed transactions in every run."
echo
printf '%-52s %12s %s\n' transport 'TPS median' 'every round'
printf '%-52s %12s %s\n' 'kernel TCP loopback (127.0.0.1, no viaudit)' "${med[tcp]}" "${tps[tcp]}"
printf '%-52s %12s %s\n' "viaudit shm (server, pgbench under it)${spin_us:+, spin_us $spin_us}" "${med[viaudit]}" "${tps[viaudit]}"
printf '%-52s %12s %s\n' 'Unix socket (no viaudit)' "${med[unix]}" "${tps[unix]}"
echo
echo "viaudit / TCP:  ${r_tcp}x  (target 1.5x: $met)"
echo "viaudit / Unix: ${r_unix}x"
echo "viaudit connections: $connections, every one transport=shm at both ends (conns logs)."
if [[ $handoffs == 0 ]]; then
	echo "Fork handoffs logged by the viaudit server: none (this build does not hand connections over;"
	echo "each backend uses the ring it inherited from the postmaster)."
else
	echo "Fork handoffs logged by the viaudit server's backends: $handoffs, median us=$handoff_us;"
	echo "'peer handed over' lines logged by the viaudit pgbench: $handed, median us=${handed_us:--}."
fi
