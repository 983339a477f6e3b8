#!/bin/bash
# Installs, with apt-get, the Debian 12 packages viaudit's build, tests and demo need: only those missing.
#
# Idempotent and quiet: when everything is installed it prints one line and changes nothing.
# Needs root when something is missing (.ci/run and contrib/demo.sh use sudo when not root).
set -euo pipefail

packages=(
	meson ninja-build gcc pkg-config            # build
	libelf-dev libffi-dev libcmocka-dev         # libraries (cmocka: unit tests)
	libibverbs-dev                              # the verbs transport (optional feature)
	redis-server redis-tools sockperf postgresql # real programs of the integration tests
	clang python3 binutils                      # test helpers (readelf, json checks)
	gnuplot-nox valgrind                        # benchmark plots and instruction counts
	iproute2 nftables                           # fault tests: network namespaces, drop rules
)

missing=()
for package in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
	[[ "$status" == installed ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
	echo "setup-debian: all ${#packages[@]} packages are installed"
	exit 0
fi
if [[ $(id -u) != 0 ]]; then
	echo "setup-debian: missing ${missing[*]}; run me as root (sudo bash $0)" >&2
	exit 1
fi

echo "setup-debian: installing ${missing[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/setup-debian.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
	>"$log" 2>&1; then
	cat "$log" >&2
	echo "setup-debian: apt-get failed (its output is above)" >&2
	exit 1
fi
echo "setup-debian: done"
