#!/usr/bin/env bash
# Installs the Debian packages tailhook's tests and the journald extra need,
# when they are missing; with the argument `bench`, also the peers the
# benchmarks run beside tailhook (fail2ban, for fail2ban-regex). Runs apt-get
# as root (or through sudo when available).
set -euo pipefail

packages=(python3-venv pkg-config gcc python3-dev libsystemd-dev logrotate systemd-journal-remote openssl podman runc debootstrap redis-server)
if [ "${1:-}" = bench ]; then
	packages+=(fail2ban)
fi
missing=()
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null; then
	sudo=(sudo)
else
	echo "system-deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
