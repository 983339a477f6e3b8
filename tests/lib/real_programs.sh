# Bash functions for the real-program integration tests: install, start and stop servers under viaudit.
# shellcheck shell=bash
#
# Usage in a script, after sourcing viaudit_test.sh:
#   . "$(dirname "$0")/../lib/real_programs.sh"
#   rp_init VIAUDIT                       # after vt_init: the policy, the trap that stops servers
#   rp_require PACKAGE COMMAND...         # apt-get install PACKAGE when a COMMAND is missing
#   rp_start_server NAME -- PROG ARGS...  # PROG may contain @PORT; sets RP_PORT, RP_SERVER_LOG
#   rp_run NAME LOG -- PROG ARGS...       # a client under `viaudit run`, conns log into LOG
#   rp_expect_shm CLIENT_LOG SERVER_LOG PORT
#   rp_stop_server NAME                   # sets RP_SERVER_STATUS
#   rp_finish                             # 1 on a failed check, else 0
#
# Every program runs as `viaudit run -p POLICY -- PROG` with VIAUDIT_LOG=conns and its own
# VIAUDIT_LOG_FILE, under a time limit. The policy routes every TCP connection to 127.0.0.0/8
# `auto`: shm when both ends run viaudit.

RP_SERVER_PIDS=()

# Stops the servers still running, then does vt_cleanup.
rp_cleanup() {
	local pid
	for pid in "${RP_SERVER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${RP_SERVER_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	vt_cleanup
}

# rp_init VIAUDIT: the viaudit command to run programs with; writes the policy.
rp_init() {
	RP_VIAUDIT=$1
	[[ -x "$RP_VIAUDIT" ]] || vt_die "no viaudit command at $RP_VIAUDIT"
	RP_POLICY=$(vt_write_policy real.policy <<'P'
route * tcp 127.0.0.0/8:* auto
P
)
	trap rp_cleanup EXIT
}

# rp_require PACKAGE COMMAND...: installs the Debian PACKAGE when one of the COMMANDs is missing.
# A test that cannot get its programs fails: it never passes or skips silently.
rp_require() {
	local package=$1 command missing=0 sudo=()
	shift
	for command in "$@"; do
		command -v "$command" >/dev/null || missing=1
	done
	[[ $missing == 1 ]] || return 0
	command -v apt-get >/dev/null || vt_die "$* missing and no apt-get to install $package"
	[[ $(id -u) == 0 ]] || sudo=(sudo -n)
	echo "--- installing $package (apt-get)"
	if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y -q \
		--no-install-recommends "$package"; then
		DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get update -q || true
		DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y -q \
			--no-install-recommends "$package" || vt_die "cannot install $package"
	fi
	for command in "$@"; do
		command -v "$command" >/dev/null || vt_die "$package is installed but $command is not"
	done
}

# Prints a TCP port on 127.0.0.1 that nobody listens on.
rp_free_port() {
	local port tries
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' &&
			return 0
	fi
	for ((tries = 0; tries < 100; tries++)); do
		port=$((20000 + RANDOM % 30000))
		# A refused connection means the port is free (a race remains; rp_start_server retries).
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	vt_die "found no free port"
}

# rp_start_server NAME -- PROG ARGS...: starts PROG under viaudit in the background, each @PORT
# in its arguments replaced by a free port, and waits for the conns log line of its listening
# socket. Tries three ports. Sets RP_PORT, RP_SERVER_LOG, RP_SERVER_OUT and RP_SERVER_PID.
rp_start_server() {
	local name=$1 attempt tries arg args
	shift 2
	for ((attempt = 0; attempt < 3; attempt++)); do
		RP_PORT=$(rp_free_port)
		RP_SERVER_LOG="$VT_TMP/$name.server.conns"
		RP_SERVER_OUT="$VT_TMP/$name.server.out"
		: >"$RP_SERVER_LOG"
		args=()
		for arg in "$@"; do
			args+=("${arg//@PORT/$RP_PORT}")
		done
		echo "--- $name server: VIAUDIT_LOG=conns viaudit run -p $RP_POLICY -- ${args[*]}"
		VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$RP_SERVER_LOG" timeout -k 5 300 \
			"$RP_VIAUDIT" run -p "$RP_POLICY" -- "${args[@]}" >"$RP_SERVER_OUT" 2>&1 &
		RP_SERVER_PID=$!
		RP_SERVER_PIDS+=("$RP_SERVER_PID")
		for ((tries = 0; tries < 200; tries++)); do
			if grep -Eq "^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:$RP_PORT listening " \
				"$RP_SERVER_LOG"; then
				return 0
			fi
			kill -0 "$RP_SERVER_PID" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$RP_SERVER_PID" 2>/dev/null; then
			sed 's/^/    /' "$RP_SERVER_OUT" "$RP_SERVER_LOG"
			vt_die "$name server: no conns line for its listening socket on port $RP_PORT within 10 s"
		fi
		wait "$RP_SERVER_PID" 2>/dev/null || true
		echo "    the server exited (port $RP_PORT taken?):"
		sed 's/^/    /' "$RP_SERVER_OUT"
	done
	vt_die "$name server did not start"
}

# rp_stop_server NAME: stops the last server with SIGTERM (SIGKILL after 10 s) and sets
# RP_SERVER_STATUS to its exit status (143 when SIGTERM ended it; 137 when it had to be killed).
rp_stop_server() {
	local tries
	RP_SERVER_STATUS=0
	if ! kill -0 "$RP_SERVER_PID" 2>/dev/null; then
		wait "$RP_SERVER_PID" || RP_SERVER_STATUS=$?
		echo "--- $1 server had already exited, status $RP_SERVER_STATUS"
		return 0
	fi
	kill -TERM "$RP_SERVER_PID"
	for ((tries = 0; tries < 200; tries++)); do
		kill -0 "$RP_SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$RP_SERVER_PID" 2>/dev/null && kill -KILL "$RP_SERVER_PID"
	wait "$RP_SERVER_PID" || RP_SERVER_STATUS=$?
	echo "--- $1 server stopped, status $RP_SERVER_STATUS"
}

# rp_run NAME LOG [VAR=VALUE...] -- PROG ARGS...: runs a client under viaudit (15 s limit), its
# conns log into LOG (also appended to $VT_LOG for the vt_expect_log checks).
rp_run() {
	local log=$2 assignments=()
	VT_RUN_NAME=$1
	shift 2
	vt_split_assignments "$@"
	assignments=("${VT_ASSIGNMENTS[@]}")
	set -- "${VT_COMMAND[@]}"
	: >"$log"
	VT_RUN_COMMAND="VIAUDIT_LOG=conns ${assignments[*]} viaudit run -p $RP_POLICY -- $*"
	echo "--- $VT_RUN_NAME: $VT_RUN_COMMAND"
	vt__execute env VIAUDIT_LOG=conns VIAUDIT_LOG_FILE="$log" "${assignments[@]}" \
		"$RP_VIAUDIT" run -p "$RP_POLICY" -- "$@"
	grep '^viaudit: ' "$log" >>"$VT_LOG" || true
}

# rp_expect_shm CLIENT_LOG SERVER_LOG PORT: every connection the client made to PORT has
# transport=shm in its conns line, and so has the server's line for the same connection.
rp_expect_shm() {
	local client_log=$1 server_log=$2 port=$3 line client_port transport count=0 bad=0
	local pattern="^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:([0-9]+) peer=127\\.0\\.0\\.1:$port transport=(.*) rule=[^ ]+\$"
	while IFS= read -r line; do
		[[ $line =~ $pattern ]] || continue
		count=$((count + 1))
		client_port=${BASH_REMATCH[1]}
		transport=${BASH_REMATCH[2]}
		if [[ $transport != shm ]]; then
			# One failure per kind is enough to read; the count says how many.
			[[ $bad != 0 ]] || vt_fail "client connection from port $client_port: transport=$transport, expected shm"
			bad=$((bad + 1))
		elif ! grep -Eq "^viaudit: conns: [^ ]+ fd=[0-9]+ local=127\\.0\\.0\\.1:$port peer=127\\.0\\.0\\.1:$client_port transport=shm rule=" \
			"$server_log"; then
			[[ $bad != 0 ]] || vt_fail "the server's conns line for the connection from port $client_port does not say transport=shm"
			bad=$((bad + 1))
		fi
	done <"$client_log"
	[[ $count != 0 ]] || vt_fail "no conns line for a client connection to port $port (were they routed?)"
	[[ $bad -le 1 ]] || vt_fail "$bad of $count connections were not shm at both ends"
	echo "    $count client connection(s) to port $port in the conns log"
}

# Ends the script: 1 when a check failed, else 0.
rp_finish() {
	vt_finish
}
