#!/usr/bin/env bash
# PostgreSQL under viaudit: the postmaster accepts each connection and forks a backend that
# serves it while the postmaster closes its copy (accept-then-fork). A cluster made with
# initdb in a temporary directory, started under viaudit on 127.0.0.1 and a free port;
# pgbench -i, then pgbench -S -c 8 -j 2 -T 10 under viaudit: no failed transaction, and every
# connection carried by shm at both ends, and handed over from the postmaster to its backend
# (the fork handoff) with no failure.
# Usage: postgres.sh VIAUDIT   (VIAUDIT_BUILD set by meson; installs postgresql when missing)
set -euo pipefail
. "$(dirname "$0")/../lib/viaudit_test.sh"
. "$(dirname "$0")/../lib/real_programs.sh"
vt_init
rp_init "$1"
rp_require postgresql pg_lsclusters
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x "$bin/initdb" && -x "$bin/postgres" && -x "$bin/pgbench" ]] ||
	vt_die "no initdb/postgres/pgbench under /usr/lib/postgresql/*/bin"

# PostgreSQL refuses to run as root: as root, run the server as the postgres user.
as_db=()
if [[ $(id -u) == 0 ]]; then
	id postgres >/dev/null 2>&1 || vt_die "running as root and there is no postgres user"
	as_db=(runuser -u postgres --)
	chmod 755 "$VT_TMP"
	chown postgres "$VT_TMP"
fi
# The server runs as postgres and pgbench as the caller: the doors must accept another uid.
RP_POLICY="$VT_TMP/postgres.policy"
printf 'set door_peers any\nroute * tcp 127.0.0.0/8:* auto\n' >"$RP_POLICY"
chmod 644 "$RP_POLICY"
data="$VT_TMP/data"
"${as_db[@]}" "$bin/initdb" -D "$data" -A trust -U postgres >"$VT_TMP/initdb.out" 2>&1 ||
	vt_die "initdb failed: $(tail -n 5 "$VT_TMP/initdb.out")"

# The server's conns log is written by the postgres user.
touch "$VT_TMP/postgres.server.conns"
chmod 666 "$VT_TMP/postgres.server.conns"
rp_start_server postgres -- "${as_db[@]}" "$bin/postgres" -D "$data" -p @PORT -k "$VT_TMP" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20
port=$RP_PORT

rp_run pgbench-init "$VT_TMP/init.conns" -- \
	"$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 postgres
vt_expect_status 0
vt_end_run

VT_TIMEOUT=40 rp_run pgbench-select "$VT_TMP/select.conns" -- \
	"$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -S -c 8 -j 2 -T 10 postgres
vt_expect_status 0
vt_expect_stdout 'number of failed transactions: 0 \(0\.000%\)'
vt_expect_stdout 'tps = [0-9.]+ \(without initial connection time\)'
rp_expect_shm "$VT_TMP/select.conns" "$RP_SERVER_LOG" "$port"
# Each backend took its connection over from the postmaster (the fork handoff): as many
# handoffs in the server's log as the peer's 'handed over' lines in pgbench's, none failed.
handoffs=$(grep -c ' handoff epoch=[0-9]* to pid=' "$RP_SERVER_LOG" || true)
handed=$(grep -c ' peer handed over: epoch=' "$VT_TMP/select.conns" || true)
if grep -q ' handoff epoch=[0-9]* \(failed\|refused\)' "$RP_SERVER_LOG" "$VT_TMP/select.conns"; then
	vt_fail "a fork handoff failed: $(grep -h -m 1 ' handoff epoch=[0-9]* \(failed\|refused\)' "$RP_SERVER_LOG" "$VT_TMP/select.conns")"
elif [[ $handed -lt 8 || $handoffs -lt $handed ]]; then
	vt_fail "expected a fork handoff per pgbench connection (8): pgbench saw $handed, the server logged $handoffs"
else
	echo "    $handed connection(s) handed over from the postmaster to their backends"
fi
vt_end_run

rp_stop_server postgres
rp_finish
