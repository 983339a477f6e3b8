#!/bin/bash
# Proves that `viaudit stat` shows a live process's shm and fallback connections with their exact byte counts, in text and JSON, while the process is blocked or stopped; and that it rejects bad PIDs and removes stale segments.
#
# usage: stat.sh VIAUDIT STAT_PEER   (VIAUDIT_BUILD: the meson build directory)
# Issue 6 items 2, 3 (stat) and 4 (stat's bad input).
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 2 ]] || vt_die "usage: stat.sh VIAUDIT STAT_PEER"
viaudit=$(realpath "$1")
peer=$(realpath "$2")
vt_init
command -v python3 >/dev/null || vt_skip "python3 is not installed (the JSON checks need it)"
[[ -d /dev/shm && -w /dev/shm ]] || vt_skip "/dev/shm is not a writable directory"

STARTED=()
st_cleanup() {
	local pid
	for pid in "${STARTED[@]}"; do
		kill -CONT "$pid" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
	done
}
trap 'st_cleanup; vt_cleanup' EXIT

policy=$(vt_write_policy shm.policy <<'POLICY'
# Loopback TCP of every object goes to shm.
route * tcp 127.0.0.0/8:* shm
route * * * kernel
POLICY
)

# st_wait_file FILE: waits up to 10 s for FILE; prints its first line.
st_wait_file() {
	local tries
	for ((tries = 0; tries < 200; tries++)); do
		if [[ -s "$1" ]]; then
			head -n 1 "$1"
			return 0
		fi
		sleep 0.05
	done
	vt_die "no $1 within 10 s: $(cat "$VT_TMP"/*.err 2>/dev/null)"
}

# st_start NAME MODE ARGS...: starts stat_peer ARGS in the background, MODE viaudit or plain.
st_start() {
	local name=$1 mode=$2
	shift 2
	if [[ "$mode" == viaudit ]]; then
		LD_AUDIT="$VT_MODULE" VIAUDIT_POLICY="$policy" VIAUDIT_LOG=conns \
			timeout -k 5 100 "$peer" "$@" 2>"$VT_TMP/$name.err" &
	else
		env -u LD_AUDIT timeout -k 5 100 "$peer" "$@" 2>"$VT_TMP/$name.err" &
	fi
	STARTED+=($!)
}

# st_stat NAME ARGS...: runs `viaudit ARGS` as a checked run.
st_stat() {
	local name=$1
	shift
	st_run "$name" "$viaudit" "$@"
}

# st_run NAME COMMAND...: runs COMMAND as a checked run (stdout, stderr, status).
st_run() {
	VT_RUN_NAME=$1
	shift
	VT_RUN_COMMAND="$*"
	echo "--- $VT_RUN_NAME: $VT_RUN_COMMAND"
	vt__execute "$@"
}

st_expect_stderr() {
	grep -Eqx -- "$1" "$VT_ERR" || vt_fail "no stderr line matching /$1/"
}

st_expect_no_stdout() {
	! grep -Eq -- "$1" "$VT_OUT" || vt_fail "stdout has a line matching /$1/"
}

st_segment() {
	echo "/dev/shm/viaudit-stat-$1"
}

# A server under viaudit (shm, with a door), a plain one, and a client under viaudit that
# sends exactly 12345 bytes to the first and 5432 to the second, reads 777 from each, and
# then waits in pause(). The plain server has no door, so that connection falls back.
st_start shm-server viaudit serve "$VT_TMP/shm.port" 777
st_start plain-server plain serve "$VT_TMP/plain.port" 777
read -r shm_port shm_pid <<<"$(st_wait_file "$VT_TMP/shm.port")"
STARTED+=("$shm_pid")
read -r plain_port plain_pid <<<"$(st_wait_file "$VT_TMP/plain.port")"
STARTED+=("$plain_pid")
st_start client viaudit client "$VT_TMP/client.ready" \
	"$shm_port:12345:777" "$plain_port:5432:777"
client=$(st_wait_file "$VT_TMP/client.ready")
STARTED+=("$client")
grep -q 'transport=shm' "$VT_TMP/client.err" ||
	vt_die "premise: the client's connection to the viaudit server is not shm: $(cat "$VT_TMP/client.err")"
shm_row_re="[0-9]+ +established +127\\.0\\.0\\.1:[0-9]+ +127\\.0\\.0\\.1:$shm_port"
plain_row_re="[0-9]+ +established +127\\.0\\.0\\.1:[0-9]+ +127\\.0\\.0\\.1:$plain_port"
fallback_text="tcp \\(no door at 127\\.0\\.0\\.1:$plain_port: peer does not run viaudit\\)"

st_stat list stat
vt_expect_status 0
vt_expect_stdout "PID +PROGRAM +CONNS +SHM +TCP +FALLBACK +LISTENING"
vt_expect_stdout "$client +stat_peer +2 +1 +0 +1 +0"
vt_expect_stdout "$shm_pid +stat_peer +1 +1 +0 +0 +1"
st_expect_no_stdout "^$plain_pid "
vt_end_run

st_stat client-connections stat "$client"
vt_expect_status 0
vt_expect_stdout "pid $client \\(stat_peer\\): 2 connections, 0 listening"
vt_expect_stdout "$shm_row_re +777 +12345 +0 +0  shm"
vt_expect_stdout "$plain_row_re +777 +5432 +0 +0  $fallback_text"
vt_end_run

# The server is blocked in read(2) on its connection all this time.
st_stat server-connections stat "$shm_pid"
vt_expect_status 0
vt_expect_stdout "pid $shm_pid \\(stat_peer\\): 1 connection, 1 listening"
vt_expect_stdout "[0-9]+ +listening +127\\.0\\.0\\.1:$shm_port +- +- +- +- +-  shm"
vt_expect_stdout "[0-9]+ +established +127\\.0\\.0\\.1:$shm_port +127\\.0\\.0\\.1:[0-9]+ +12345 +777 +0 +0  shm"
vt_end_run

kill -STOP "$client"
st_stat stopped-process stat "$client"
vt_expect_status 0
vt_expect_stdout "$shm_row_re +777 +12345 +0 +0  shm"
vt_end_run
kill -CONT "$client"

st_stat json-connections stat --json "$client"
vt_expect_status 0
python3 -m json.tool "$VT_OUT" >/dev/null 2>"$VT_TMP/json.err" ||
	vt_fail "not JSON: $(cat "$VT_TMP/json.err")"
python3 - "$VT_OUT" "$client" "$shm_port" "$plain_port" >"$VT_TMP/json-connections.check" 2>&1 <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
pid, shm_port, plain_port = int(sys.argv[2]), sys.argv[3], sys.argv[4]
assert doc["pid"] == pid and doc["program"] == "stat_peer", doc
by_peer = {c["peer"].rsplit(":", 1)[1]: c for c in doc["connections"]}
shm, plain = by_peer[shm_port], by_peer[plain_port]
assert (shm["transport"], shm["fallback"], shm["reason"]) == ("shm", False, None), shm
assert (shm["bytes_out"], shm["bytes_in"], shm["state"]) == (12345, 777, "established"), shm
assert (plain["transport"], plain["fallback"]) == ("tcp", True), plain
assert plain["reason"] == "no door at 127.0.0.1:%s: peer does not run viaudit" % plain_port, plain
assert (plain["bytes_out"], plain["bytes_in"]) == (5432, 777), plain
assert shm["handoffs"] == 0 and plain["reconnects"] == 0
assert shm["caller"] == "main" and shm["rule"].endswith("shm.policy:2"), shm
PY
	vt_fail "JSON contents: $(cat "$VT_TMP/json-connections.check")"
vt_end_run

st_stat json-list stat --json
vt_expect_status 0
python3 - "$VT_OUT" "$client" >"$VT_TMP/json-list.check" 2>&1 <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
me = [p for p in doc["processes"] if p["pid"] == int(sys.argv[2])]
assert len(me) == 1, doc
assert (me[0]["connections"], me[0]["shm"], me[0]["fallback"], me[0]["tcp"]) == (2, 1, 1, 0), me
PY
	vt_fail "JSON list: $(cat "$VT_TMP/json-list.check")"
vt_end_run

# --watch until interrupted: `timeout` sends SIGTERM after 2.5 s, and stat ends with status 0.
st_run watch timeout --preserve-status -s TERM 2.5 "$viaudit" stat --watch "$client"
vt_expect_status 0
snapshots=$(grep -c "^pid $client " "$VT_OUT" || true)
((snapshots >= 2)) || vt_fail "$snapshots snapshot(s) in 2.5 s, expected at least 2"
vt_end_run

st_run watch-json timeout --preserve-status -s TERM 2.5 "$viaudit" stat --watch --json "$client"
vt_expect_status 0
lines=0
while IFS= read -r line; do
	lines=$((lines + 1))
	python3 -c 'import json, sys; json.loads(sys.argv[1])' "$line" 2>/dev/null ||
		vt_fail "line $lines is not one JSON object: $line"
done <"$VT_OUT"
((lines >= 2)) || vt_fail "$lines JSON line(s) in 2.5 s, expected at least 2"
vt_end_run

# A forked child writes into its own segment, never its parent's: the parent's counts stay
# as they were; the child lists the inherited connections (55 more bytes on the shm one,
# which its write took over from the parent: one fork handoff) and its own new one.
st_start forker viaudit client "$VT_TMP/forker.ready" "$shm_port:12345:777" \
	"$plain_port:5432:777" --fork "$plain_port:100:55"
forker=$(st_wait_file "$VT_TMP/forker.ready")
STARTED+=("$forker")
child=$(st_wait_file "$VT_TMP/forker.ready.child")
STARTED+=("$child")
st_stat fork-parent stat "$forker"
vt_expect_status 0
vt_expect_stdout "pid $forker \\(stat_peer\\): 2 connections, 0 listening"
vt_expect_stdout "$shm_row_re +777 +12345 +0 +0  shm"
vt_end_run
st_stat fork-child stat "$child"
vt_expect_status 0
vt_expect_stdout "pid $child \\(stat_peer\\): 3 connections, 0 listening"
vt_expect_stdout "$shm_row_re +777 +12400 +1 +0  shm"
vt_expect_stdout "$plain_row_re +777 +5432 +0 +0  $fallback_text"
vt_expect_stdout "$plain_row_re +0 +100 +0 +0  $fallback_text"
vt_end_run

# ---- bad input ----

st_stat not-interposed stat "$plain_pid"
vt_expect_status 1
st_expect_stderr "viaudit stat: $plain_pid: not an interposed process"
vt_end_run

st_stat not-a-pid stat 12ab
vt_expect_status 2
st_expect_stderr "viaudit stat: '12ab' is not a process ID"
vt_end_run

st_stat unknown-option stat --frobnicate
vt_expect_status 2
vt_end_run

# A process killed with SIGKILL leaves its segment; asking for it says the PID is gone and
# removes the segment.
st_start killed viaudit client "$VT_TMP/killed.ready" "$plain_port:10:777"
killed=$(st_wait_file "$VT_TMP/killed.ready")
kill -KILL "$killed"
while kill -0 "$killed" 2>/dev/null; do sleep 0.05; done
[[ -e "$(st_segment "$killed")" ]] || vt_die "premise: the killed process left no segment"
st_stat dead-pid stat "$killed"
vt_expect_status 1
st_expect_stderr "viaudit stat: $killed: no such process"
[[ ! -e "$(st_segment "$killed")" ]] || vt_fail "the dead process's segment is still there"
vt_end_run

# Stale segments are skipped and removed by the listing too: one of a killed process, and
# one whose PID now belongs to another process (a copy of a live segment, renamed to the
# plain server's PID: another start time, and that process does not map it).
st_start killed2 viaudit client "$VT_TMP/killed2.ready" "$plain_port:10:777"
killed2=$(st_wait_file "$VT_TMP/killed2.ready")
kill -KILL "$killed2"
while kill -0 "$killed2" 2>/dev/null; do sleep 0.05; done
reused=$(st_segment "$plain_pid")
python3 - "$(st_segment "$client")" "$reused" "$plain_pid" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<i", data, 24, int(sys.argv[3]))  # vi_stats_header.pid
open(sys.argv[2], "wb").write(data)
PY
st_stat stale-list stat
vt_expect_status 0
st_expect_no_stdout "^($killed2|$plain_pid) "
vt_expect_stdout "$client +stat_peer +2 +1 +0 +1 +0"
[[ ! -e "$(st_segment "$killed2")" ]] || vt_fail "the killed process's segment is still there"
[[ ! -e "$reused" ]] || vt_fail "the segment under a reused PID is still there"
vt_end_run

# A process that execs keeps its PID; its old segment is stale once the new image runs. The
# new image (sleep, still under LD_AUDIT) has no routed socket yet.
st_start execer viaudit client "$VT_TMP/execer.ready" "$plain_port:10:777" --exec sleep 60
execer=$(st_wait_file "$VT_TMP/execer.ready")
STARTED+=("$execer")
for ((tries = 0; tries < 200; tries++)); do
	[[ "$(cat "/proc/$execer/comm" 2>/dev/null)" == sleep ]] && break
	sleep 0.05
done
st_stat after-exec stat "$execer"
vt_expect_status 0
vt_expect_stdout "pid $execer \\(sleep\\): interposed, no routed sockets yet"
[[ ! -e "$(st_segment "$execer")" ]] || vt_fail "the segment of the image before exec is still there"
vt_end_run

vt_finish
