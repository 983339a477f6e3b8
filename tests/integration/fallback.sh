#!/bin/bash
# Proves that a routed connection whose peer has no viaudit, or no door, is plain TCP byte for byte and says why in its conns line, and that two routed peers use shm.
#
# usage: fallback.sh STREAM_CHECK   (VIAUDIT_BUILD: the meson build directory)
# Issue 4 item 4. Every run is a stream_check pair: a seeded stream each way, every byte checked.
set -euo pipefail
# shellcheck source=../lib/viaudit_test.sh
. "$(dirname "$0")/../lib/viaudit_test.sh"
# shellcheck source=faults/faults_lib.sh
. "$(dirname "$0")/faults/faults_lib.sh"

[[ $# == 1 ]] || vt_die "usage: fallback.sh STREAM_CHECK"
stream_check=$(realpath "$1")
fl_init

shm_policy=$(fl_policy shm.policy shm)
kernel_policy=$(fl_policy kernel.policy kernel)
bytes=$((8 << 20))

# pair NAME SERVER_MODE CLIENT_MODE SEED: one stream_check connection; both ends must see the
# other's stream intact. Returns 1 when the server never came up.
pair() {
	local name=$1 server_mode=$2 client_mode=$3 seed=$4
	fl_start "$name-server" "$server_mode" -- "$stream_check" server "$VT_TMP/$name.port" 1
	fl_wait_port "$name-server" "$VT_TMP/$name.port" || return 1
	fl_run "$name-client" "$client_mode" -- "$stream_check" client "$FL_PORT" "$bytes" "$seed"
	fl_wait "$name-server"
	fl_expect_status "$name-client" 0
	fl_expect_out "$name-client" "client: ok sent=$bytes received=$bytes" \
		"the server's $bytes bytes arrived intact"
	fl_expect_status "$name-server" 0
	fl_expect_out "$name-server" "conn 1: ok sent=$bytes received=$bytes" \
		"the client's $bytes bytes arrived intact"
}

fl_section "control: neither end under viaudit"
if pair control plain plain 1; then
	fl_expect_no_viaudit_output control-server
	fl_expect_no_viaudit_output control-client
fi
fl_end_section

fl_section "(a) client under viaudit (shm) -> server without viaudit"
if pair a plain "$shm_policy" 2; then
	fl_expect_no_viaudit_output a-server
	fl_expect_conns_fallback a-client 1 'no door' "the server has no door"
fi
fl_end_section

fl_section "(b) server under viaudit (shm) <- client without viaudit"
if pair b "$shm_policy" plain 3; then
	fl_expect_no_viaudit_output b-client
	fl_expect_listening_shm b-server
	fl_expect_conns_fallback b-server 1 '.+' "no door request came from the client"
fi
fl_end_section

fl_section "(c) both under viaudit, the server's policy routes kernel"
if pair c "$kernel_policy" "$shm_policy" 4; then
	fl_expect_no_conns c-server "the kernel rule leaves its sockets alone, so it has no door"
	fl_expect_conns_fallback c-client 1 'no door' "the server has no door"
fi
fl_end_section

fl_section "(d) both under viaudit with shm"
if pair d "$shm_policy" "$shm_policy" 5; then
	fl_expect_listening_shm d-server
	fl_expect_conns_shm d-server 1 "the accepted connection"
	fl_expect_conns_shm d-client 1 "the connection"
fi
fl_end_section

fl_finish
