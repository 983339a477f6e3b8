#!/bin/bash
# Installs the build into a temporary directory, moves the install elsewhere, and runs the installed viaudit from another directory.
#
# usage: install.sh BUILD ECHO_SERVER ECHO_CLIENT
#   BUILD        the meson build directory to install (meson install --destdir, no rebuild)
#   ECHO_SERVER  tests/lib/echo_server, run without viaudit
#   ECHO_CLIENT  contrib/demo/echo_client, run by the installed `viaudit run`
#
# The install is moved away from the place `meson install` put it, so the checks prove that an
# installed viaudit finds its libviaudit.so relative to its own prefix, not through a path
# compiled in.
# shellcheck disable=SC2016 # $VARS in single quotes are for the child shell to expand
set -euo pipefail

[[ $# == 3 ]] || { echo "usage: install.sh BUILD ECHO_SERVER ECHO_CLIENT" >&2; exit 1; }
build=$(realpath "$1")
echo_server=$(realpath "$2")
echo_client=$(realpath "$3")
tmp=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/viaudit-install.XXXXXX")")
server_pid=
cleanup() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT
unset LD_AUDIT VIAUDIT_POLICY VIAUDIT_LOG VIAUDIT_LOG_FILE VIAUDIT_MODULE LD_LIBRARY_PATH

. "$(dirname "$0")/../lib/cases.sh"


# option NAME: a meson option of the build (prefix, bindir, libdir, ...).
option() {
	meson introspect --buildoptions "$build" |
		python3 -c 'import json, sys
for o in json.load(sys.stdin):
    if o["name"] == sys.argv[1]:
        print(o["value"])' "$1"
}

# --- install ----------------------------------------------------------------------------------
prefix=$(option prefix)
bindir=$(option bindir)
libdir=$(option libdir)
datadir=$(option datadir)
mandir=$(option mandir)
includedir=$(option includedir)
for dir in "$bindir" "$libdir" "$datadir" "$mandir" "$includedir"; do
	[[ "$dir" != /* ]] || { echo "ERROR: $dir is outside the prefix; this test needs relative dirs" >&2; exit 1; }
done

name=install
echo "--- install: meson install -C $build --destdir $tmp/destdir"
if ! meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/destdir" >"$tmp/out" 2>"$tmp/err"; then
	fail "meson install failed"
	exit 1
fi
# Move the prefix somewhere `meson install` never saw.
mv "$tmp/destdir$prefix" "$tmp/moved"
p=$tmp/moved
echo "    installed under $prefix, moved to $p"

name=files
for file in \
	"$bindir/viaudit" \
	"$libdir/viaudit/libviaudit.so" \
	"$libdir/pkgconfig/viaudit.pc" \
	"$datadir/viaudit/policies/example.policy" \
	"$mandir/man1/viaudit.1" \
	"$mandir/man5/viaudit.policy.5" \
	"$includedir/viaudit/policy.h" \
	"$includedir/viaudit/symbols.h"; do
	[[ -f "$p/$file" ]] || fail "PREFIX/$file was not installed"
done
[[ -x "$p/$bindir/viaudit" ]] || fail "PREFIX/$bindir/viaudit is not executable"

name=pkg-config
module_var=$(PKG_CONFIG_PATH="$p/$libdir/pkgconfig" pkg-config --variable=module viaudit || true)
[[ "$module_var" == "$prefix/$libdir/viaudit/libviaudit.so" ]] ||
	fail "pkg-config --variable=module viaudit gave '$module_var', expected $prefix/$libdir/viaudit/libviaudit.so"

if command -v man >/dev/null; then
	for page in "$mandir/man1/viaudit.1" "$mandir/man5/viaudit.policy.5"; do
		t "man-$(basename "$page")" env MANWIDTH=80 man --warnings -l "$p/$page"
		expect_status 0
		[[ ! -s "$tmp/err" ]] || fail "man reports problems in $page"
		grep -q . "$tmp/out" || fail "$page renders empty"
	done
fi

# --- the installed command, from another directory ---------------------------------------------
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
viaudit=$p/$bindir/viaudit
module=$p/$libdir/viaudit/libviaudit.so

t version "$viaudit" --version
expect_status 0
expect_out 'viaudit [0-9]+\.[0-9]+\.[0-9]+'

t check-example "$viaudit" check "$p/$datadir/viaudit/policies/example.policy"
expect_status 0

cat >"$tmp/install.policy" <<'EOF'
route main tcp 127.0.0.0/8:* tcp
route *    *   *             kernel
EOF

t run-true "$viaudit" run -p "$tmp/install.policy" -l routes -- /bin/true
expect_status 0
[[ ! -s "$tmp/err" ]] || fail "/bin/true under the installed viaudit printed on stderr"

t run-finds-module "$viaudit" run -p "$tmp/install.policy" -- sh -c 'echo "LD_AUDIT=$LD_AUDIT"'
expect_status 0
expect_out "LD_AUDIT=$(quote "$module")"

# A program whose own connect is routed: the module was loaded and read the policy.
"$echo_server" -t 60 >"$tmp/echo.port" 2>"$tmp/echo.err" &
server_pid=$!
for ((tries = 0; tries < 100; tries++)); do
	[[ -s "$tmp/echo.port" ]] && break
	sleep 0.05
done
port=$(head -n 1 "$tmp/echo.port")
[[ "$port" =~ ^[0-9]+$ ]] || { echo "ERROR: echo server gave no port: $(cat "$tmp/echo.err")" >&2; exit 1; }

t run-routes "$viaudit" run -p "$tmp/install.policy" -l routes,conns -- "$echo_client" -n 100 127.0.0.1 "$port"
expect_status 0
expect_out 'ns_per_round_trip=[0-9]+'
expect_err "viaudit: routes: main connect (plt|got) -> viaudit \($(quote "$tmp/install.policy"):1 tcp\)"
expect_err "viaudit: conns: main fd=[0-9]+ local=127\.0\.0\.1:[0-9]+ peer=127\.0\.0\.1:$port transport=tcp.* rule=$(quote "$tmp/install.policy"):1"

if ((failures)); then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
