#!/bin/bash
# viaudit trace (issue 6): the trace lines of a known program, tracing through PLT (lazy and
# -z now), GOT (-fno-plt) and dlsym bindings, a traced call that is also routed, a user
# prototype file for a function outside the socket table, and bad input (a symbol that does
# not exist, a prototype file with errors).
#
# usage: trace.sh VIAUDIT ECHO_SERVER TRACE_PROG TRACE_SSL SOURCE_DIR   (VIAUDIT_BUILD set)
set -euo pipefail
. "$(dirname "$0")/../lib/viaudit_test.sh"

[[ $# == 5 ]] || vt_die "usage: trace.sh VIAUDIT ECHO_SERVER TRACE_PROG TRACE_SSL SOURCE_DIR"
viaudit=$1 echo_server=$2 trace_prog=$3 trace_ssl=$4 source_dir=$5
vt_init
vt_start_echo_server "$echo_server"
port=$VT_ECHO_PORT
libdir=$(dirname "$trace_prog")

# trace_run NAME [VAR=VALUE...] -- TRACE-ARGS...: runs `viaudit trace TRACE-ARGS` (stderr has
# the trace); $VT_LOG gets its `viaudit:` lines.
trace_run() {
	local assignments=()
	VT_RUN_NAME=$1
	shift
	vt_split_assignments "$@"
	assignments=("${VT_ASSIGNMENTS[@]}")
	set -- "${VT_COMMAND[@]}"
	VT_RUN_COMMAND="${assignments[*]} viaudit trace $*"
	echo "--- $VT_RUN_NAME: $VT_RUN_COMMAND"
	vt__execute env -u VIAUDIT_LOG -u VIAUDIT_PROTOTYPES VIAUDIT_MODULE="$VT_MODULE" \
		"${assignments[@]}" "$viaudit" trace "$@"
}

# normalized FILE: its trace lines with pid.tid, durations, loopback ports and addresses made
# constant, so that they can be compared with expected lines.
normalized() {
	grep '^viaudit: trace: ' "$1" | sed -E \
		-e 's/^viaudit: trace: [0-9]+\.[0-9]+ /viaudit: trace: P.T /' \
		-e 's/ [0-9]+\.[0-9]us$/ Dus/' \
		-e 's/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g' \
		-e 's/0x[0-9a-f]+/PTR/g' || true
}

# expect_trace FILE: the normalized trace lines of FILE are exactly stdin's lines ("FD" in
# them stands for the descriptor socket() returned).
expect_trace() {
	local got expected fd
	got=$(normalized "$1")
	fd=$(sed -nE 's/^viaudit: trace: P\.T [^ ]+ socket\(.*\) = ([0-9]+)( .*)?$/\1/p' <<<"$got" | head -n 1)
	expected=$(sed "s/FD/${fd:-FD}/g")
	if [[ "$got" != "$expected" ]]; then
		vt_fail "trace lines differ from the expected ones"
		diff <(echo "$expected") <(echo "$got") | sed 's/^/    /' || true
	fi
}

# The seven calls of trace_client.c from CALLER, as expected (the transport tags are TAG,
# for calls on the connected socket).
client_lines() {
	local caller=$1 tag=${2:-}
	cat <<EOF
viaudit: trace: P.T $caller socket(domain=AF_INET, type=SOCK_STREAM|SOCK_CLOEXEC, protocol=0) = FD Dus
viaudit: trace: P.T $caller connect(fd=FD, addr=127.0.0.1:PORT, len=16) = 0${tag} Dus
viaudit: trace: P.T $caller send(fd=FD, buf=5:"hello", len=5, flags=MSG_NOSIGNAL) = 5${tag} Dus
viaudit: trace: P.T $caller recv(fd=FD, buf=5:"hello", len=5, flags=MSG_WAITALL) = 5${tag} Dus
viaudit: trace: P.T $caller shutdown(fd=FD, how=SHUT_WR) = 0${tag} Dus
viaudit: trace: P.T $caller close(fd=FD) = 0${tag} Dus
viaudit: trace: P.T $caller send(fd=-1, buf=1:"x", len=1, flags=0) = -1 EBADF Dus
EOF
}

all_calls=socket,connect,send,recv,shutdown,close

# --- a known program, two libraries, one traced ----------------------------------------------
policy=$(vt_write_policy one.policy <<EOF
trace libtrace_a.so $all_calls
EOF
)
trace_run one_of_two VIAUDIT_LOG=debug -- -p "$policy" -- "$trace_prog" "$port" main a b
vt_expect_status 0
vt_expect_stdout 'a ok'
vt_expect_stdout 'b ok'
client_lines libtrace_a.so | expect_trace "$VT_ERR"
vt_expect_log 'viaudit: debug: libtrace_a\.so connect plt -> traced \(.*one\.policy:1\)' \
	'the lazy PLT binding is traced through la_symbind64'
vt_expect_no_log 'viaudit: debug: (main|libtrace_b\.so) .* -> traced .*' \
	'objects no trace rule names keep their bindings'
vt_end_run

# --- -z now and -fno-plt objects ---------------------------------------------------------------
vt_begin_checks premises "how the libraries were linked"
vt_check_import "$libdir/libtrace_now.so" connect plt
vt_check_import "$libdir/libtrace_noplt.so" connect got
readelf -dW "$libdir/libtrace_now.so" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' ||
	vt_fail "premise: libtrace_now.so is not linked with -z now"
vt_end_run

policy=$(vt_write_policy modes.policy <<EOF
trace libtrace_now.so $all_calls
trace libtrace_noplt.so $all_calls
EOF
)
trace_run now_and_noplt VIAUDIT_LOG=debug -- -p "$policy" -- "$trace_prog" "$port" now noplt
vt_expect_status 0
{ client_lines libtrace_now.so; client_lines libtrace_noplt.so; } | expect_trace "$VT_ERR"
vt_expect_log 'viaudit: debug: libtrace_now\.so connect plt -> traced .*' \
	'a -z now JUMP_SLOT is traced through la_symbind64'
vt_expect_log 'viaudit: debug: libtrace_noplt\.so connect got -> traced .*' \
	'a -fno-plt GLOB_DAT slot is traced by GOT patching'
vt_end_run

# --- traced and routed: the line names the transport ------------------------------------------
server_policy=$(vt_write_policy server.policy <<EOF
route main tcp 127.0.0.0/8:* shm
EOF
)
LD_AUDIT="$VT_MODULE" VIAUDIT_POLICY="$server_policy" "$echo_server" -t 60 \
	>"$VT_TMP/shm-echo.port" 2>"$VT_TMP/shm-echo.err" &
shm_echo_pid=$!
trap 'kill $shm_echo_pid 2>/dev/null || true; vt_cleanup' EXIT
for ((tries = 0; tries < 100; tries++)); do
	[[ -s "$VT_TMP/shm-echo.port" ]] && break
	sleep 0.05
done
shm_port=$(head -n 1 "$VT_TMP/shm-echo.port")
[[ "$shm_port" =~ ^[0-9]+$ ]] || vt_die "echo server under viaudit printed no port: $(cat "$VT_TMP/shm-echo.err")"

policy=$(vt_write_policy routed.policy <<EOF
route libtrace_a.so tcp 127.0.0.0/8:* shm
route libtrace_b.so tcp 127.0.0.0/8:* tcp
trace libtrace_a.so $all_calls
trace libtrace_b.so $all_calls
EOF
)
trace_run routed_shm -- -p "$policy" -- "$trace_prog" "$shm_port" a
vt_expect_status 0
client_lines libtrace_a.so ' [shm]' | expect_trace "$VT_ERR"
vt_end_run
trace_run routed_tcp -- -p "$policy" -- "$trace_prog" "$port" b
vt_expect_status 0
client_lines libtrace_b.so ' [tcp]' | expect_trace "$VT_ERR"
vt_end_run

# --- a symbol that does not exist ---------------------------------------------------------------
cp "$source_dir/fakessl.proto" "$VT_TMP/fakessl.proto"
printf 'int nowhere_at_all(int x);\n' >"$VT_TMP/nowhere.proto"
policy=$(vt_write_policy missing.policy <<EOF
trace libtrace_a.so connect,no_such_function
trace main nowhere_at_all
trace libnot_loaded.so connect
EOF
)
trace_run missing_symbol VIAUDIT_PROTOTYPES="$VT_TMP/nowhere.proto" -- -p "$policy" -- "$trace_prog" "$port" a
vt_expect_status 0
vt_expect_stdout 'a ok'
q=$(vt_regex_quote "$policy")
vt_expect_log "viaudit: $q:1:29: warning: no prototype for 'no_such_function': it is not traced .*"
vt_expect_log "viaudit: $q:1:29: warning: traced symbol 'no_such_function' is defined by no object loaded at start-up"
vt_expect_log "viaudit: $q:2:12: warning: traced symbol 'nowhere_at_all' is defined by no object loaded at start-up"
vt_expect_log "viaudit: $q:3:7: warning: trace CALLER 'libnot_loaded\\.so' matches no object loaded at start-up"
vt_expect_log_count 1 'viaudit: trace: .* libtrace_a\.so connect\(.*' 'the symbols that exist are still traced'
vt_end_run

# --- a user prototype file: a function outside the socket table (PLT, GOT and dlsym) -----------
expected_ssl() {
	cat <<EOF
viaudit: trace: P.T main fakessl_write(s=PTR, buf=5:"hello", num=5) = 5 Dus
viaudit: trace: P.T libssluser_noplt.so fakessl_read(s=PTR, buf=6:"secret", num=64) = 6 Dus
viaudit: trace: P.T main fakessl_write(s=PTR, buf=3:"bye", num=3) = 3 Dus
EOF
}
policy=$(vt_write_policy ssl.policy <<EOF
set prototypes fakessl.proto
trace main fakessl_write
trace libssluser_noplt.so fakessl_read
EOF
)
trace_run prototypes_set VIAUDIT_LOG=debug -- -p "$policy" -- "$trace_ssl"
vt_expect_status 0
vt_expect_stdout 'calls=3'
expected_ssl | expect_trace "$VT_ERR"
vt_expect_log 'viaudit: debug: main fakessl_write plt -> traced .*' 'a PLT binding to another library'
vt_expect_log 'viaudit: debug: libssluser_noplt\.so fakessl_read got -> traced .*' 'a GOT slot to another library'
vt_expect_log 'viaudit: debug: main fakessl_write dlsym -> traced .*' 'a dlsym'
vt_end_run

policy=$(vt_write_policy ssl-env.policy <<EOF
trace main fakessl_write
trace libssluser_noplt.so fakessl_read
EOF
)
trace_run prototypes_env VIAUDIT_PROTOTYPES="$VT_TMP/nowhere.proto:$VT_TMP/fakessl.proto" -- -p "$policy" -- "$trace_ssl"
vt_expect_status 0
expected_ssl | expect_trace "$VT_ERR"
vt_end_run

# --- a prototype file with errors: FILE:LINE:COL, nothing from it traced, the program runs -------
cp "$source_dir/bad.proto" "$VT_TMP/bad.proto"
policy=$(vt_write_policy bad.policy <<EOF
set prototypes bad.proto
trace main fakessl_write
EOF
)
trace_run prototype_errors -- -p "$policy" -- "$trace_ssl"
vt_expect_status 0
vt_expect_stdout 'calls=3'
q=$(vt_regex_quote "$VT_TMP/bad.proto")
vt_expect_log "viaudit: $q:2:19: error: 'struct fakessl' is passed by value; only pointers to structs and unions can be traced"
vt_expect_log "viaudit: $q:3:41: error: no parameter named 'count'"
vt_expect_log "viaudit: $q: 2 errors: nothing declared in it is traced"
vt_expect_log "viaudit: .*bad\\.policy:2:12: warning: no prototype for 'fakessl_write': .*"
vt_expect_log_count 0 'viaudit: trace: .*' 'nothing is traced'
vt_end_run

# --- --json and -o FILE ---------------------------------------------------------------------------
policy=$(vt_write_policy json.policy <<EOF
trace libtrace_a.so $all_calls
EOF
)
trace_run json -- -p "$policy" -o "$VT_TMP/trace.json" --json -- "$trace_prog" "$port" a
vt_expect_status 0
vt_expect_log_count 0 'viaudit: trace: .*' 'the trace goes to the -o file'
lines=$(grep -c '' "$VT_TMP/trace.json" || true)
[[ $lines == 7 ]] || vt_fail "$lines lines in the -o file, expected 7"
grep -vE '^\{"pid":[0-9]+,"tid":[0-9]+,"caller":"libtrace_a\.so","symbol":"[a-z]+","args":\{.*\},"ret":-?[0-9]+(,"errno":"E[A-Z]+")?,"us":[0-9.]+\}$' \
	"$VT_TMP/trace.json" && vt_fail "lines of the -o file are not trace JSON objects"
grep -q '"symbol":"send","args":{"fd":-1,"buf":{"len":1,"bytes":"x"},"len":1,"flags":"0"},"ret":-1,"errno":"EBADF"' \
	"$VT_TMP/trace.json" || vt_fail "no JSON line for the failed send"
if command -v python3 >/dev/null; then
	python3 -c 'import json, sys
for line in open(sys.argv[1]):
    json.loads(line)' "$VT_TMP/trace.json" || vt_fail "the -o file is not JSON lines"
fi
vt_end_run

# --- the command's own errors ---------------------------------------------------------------------
bad_policy=$(vt_write_policy broken.policy <<EOF
trace libtrace_a.so connect,,send
EOF
)
trace_run bad_policy -- -p "$bad_policy" -- "$trace_prog" "$port" a
vt_expect_status 1
grep -q 'the program was not started' "$VT_ERR" || vt_fail "no 'not started' message"
vt_end_run
empty=$(vt_write_policy empty.policy </dev/null)
trace_run no_trace_rules -- -p "$empty" -- "$trace_prog" "$port" a
vt_expect_status 0
grep -q "viaudit trace: warning: .*empty.policy has no trace rules: nothing will be traced" "$VT_ERR" ||
	vt_fail "no warning about a policy without trace rules"
vt_end_run
trace_run no_program -- -p "$policy"
vt_expect_status 2
vt_end_run

vt_finish
