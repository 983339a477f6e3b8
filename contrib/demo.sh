#!/bin/bash
# The README's first command: install what is missing, build, run an echo server and client under
# `viaudit run` with contrib/policies/demo.policy, and print which object's calls went where.
#
# Build directory: build/ at the top of the tree (VIAUDIT_BUILD_DIR overrides it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${VIAUDIT_BUILD_DIR:-build}
rounds=${DEMO_ROUNDS:-20000}

say() { printf '\n== %s\n' "$*"; }

say "1. Debian packages"
if [[ $(id -u) == 0 ]]; then
	bash contrib/setup-debian.sh
else
	sudo bash contrib/setup-debian.sh
fi

say "2. build ($build/)"
if [[ ! -f "$build/meson-private/coredata.dat" ]]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" >"$build/demo-build.log" 2>&1 || {
	cat "$build/demo-build.log" >&2
	echo "demo: the build failed (its output is above)" >&2
	exit 1
}
echo "built: $build/contrib/cli/viaudit, $build/audit/libviaudit.so"

viaudit=$build/contrib/cli/viaudit
server=$build/tests/lib/echo_server
client=$build/contrib/demo/echo_client
policy=contrib/policies/demo.policy
for program in "$viaudit" "$server" "$client"; do
	[[ -x "$program" ]] || {
		echo "demo: $program was not built (the echo server needs -Dtests=true)" >&2
		exit 1
	}
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viaudit-demo.XXXXXX")
server_pid=
cleanup() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT

say "3. the policy ($policy)"
grep -v '^[[:space:]]*\(#\|$\)' "$policy" | sed 's/^/    /'
"$viaudit" check "$policy"

# start_server NAME [viaudit run ARGS... --]: starts the echo server (under viaudit when
# arguments are given), its log in $tmp/NAME.log; sets server_pid and port.
start_server() {
	local name=$1 tries
	shift
	VIAUDIT_LOG_FILE="$tmp/$name.log" "$@" "$server" -t 120 >"$tmp/$name.port" 2>"$tmp/$name.err" &
	server_pid=$!
	for ((tries = 0; tries < 100; tries++)); do
		if [[ -s "$tmp/$name.port" ]]; then
			port=$(head -n 1 "$tmp/$name.port")
			return 0
		fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			cat "$tmp/$name.err" >&2
			echo "demo: the echo server ($name) exited" >&2
			exit 1
		fi
		sleep 0.05
	done
	echo "demo: the echo server ($name) printed no port within 5 s" >&2
	exit 1
}

stop_server() {
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

# run_client NAME [viaudit run ARGS... --]: one client run; prints its ns per round trip.
run_client() {
	local name=$1
	shift
	if ! VIAUDIT_LOG_FILE="$tmp/$name.log" "$@" "$client" -n "$rounds" 127.0.0.1 "$port" \
		>"$tmp/$name.out" 2>"$tmp/$name.err"; then
		cat "$tmp/$name.err" >&2
		echo "demo: the client ($name) failed" >&2
		exit 1
	fi
	sed -n 's/^ns_per_round_trip=//p' "$tmp/$name.out"
}

# show_log NAME TITLE: the routing lines one process logged.
show_log() {
	echo "  $2:"
	if [[ -s "$tmp/$1.log" ]]; then
		grep -E '^viaudit: (routes|conns):' "$tmp/$1.log" | sed 's/^viaudit: /    /' || true
		grep -vE '^viaudit: (routes|conns):' "$tmp/$1.log" | sed 's/^/    /' || true
	else
		echo "    (no viaudit log lines: was libviaudit.so loaded?)"
	fi
}

say "4. echo_server and echo_client, both under: viaudit run -p $policy -l routes,conns"
# shellcheck disable=SC2054 # "routes,conns" is one argument
run=("$viaudit" run -p "$policy" -l routes,conns --)
start_server server "${run[@]}"
with=()
ns=$(run_client client "${run[@]}")
with+=("$ns")
show_log server "echo_server (listens on 127.0.0.1:$port)"
show_log client "echo_client (connects to 127.0.0.1:$port)"
sed 's/^/  echo_client: /' "$tmp/client.out" | grep -v ns_per_round_trip
for i in 2 3; do
	ns=$(run_client "client$i" "${run[@]}")
	with+=("$ns")
done
stop_server

say "5. the same pair without viaudit, for comparison"
start_server plain-server env -u LD_AUDIT
without=()
for i in 1 2 3; do
	ns=$(run_client "plain-client$i" env -u LD_AUDIT)
	without+=("$ns")
done
stop_server

# Best of three runs each: these machines are noisy, and the best run is the least disturbed.
best() { printf '%s\n' "$@" | sort -n | head -n 1; }
best_with=$(best "${with[@]}")
best_without=$(best "${without[@]}")
# The client's connection: its conns line has a peer= (the server's has "listening").
transport=$(sed -n 's/^viaudit: conns: .* peer=.* transport=\([a-z]*\).*/\1/p' "$tmp/client.log" \
	2>/dev/null | head -n 1)

say "6. round trips of 64 bytes, best of 3 runs of $rounds each"
awk -v with="$best_with" -v without="$best_without" 'BEGIN {
	printf "  with viaudit:     %8.2f us per round trip\n", with / 1000
	printf "  without viaudit:  %8.2f us per round trip\n", without / 1000
	printf "  speed-up (without / with): %.2fx\n", without / with
}'
if [[ "$transport" == tcp ]]; then
	echo "  The connection was carried by viaudit's tcp transport, which is kernel TCP"
	echo "  underneath: this version has no shared-memory transport yet, so both runs use"
	echo "  kernel TCP and any difference between them is noise."
elif [[ -z "$transport" ]]; then
	echo "  No conns line from echo_client: its connection was not carried by viaudit."
else
	echo "  echo_client's connection was carried by the $transport transport."
fi
