#!/usr/bin/env bash
# Installs the Debian packages treesync needs to build, test and benchmark,
# when any is missing. Safe to run again; needs root (or sudo) only when
# something must be installed.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libevent-dev libconfig-dev libinotifytools0-dev libxxhash-dev
  libsystemd-dev check
  python3 rsync valgrind util-linux passwd procps
  openssh-client openssh-server iproute2
  systemd systemd-container debootstrap groff-base man-db logrotate
  clang libclang-rt-dev
  acl libcap2-bin libfuse3-dev fuse3
  debhelper dpkg-dev lintian bash-completion
)
# Not here: prometheus (tests/integration/test_metrics.py installs it when
# missing and keeps the package's own server from running on :9090).
if [ "${1:-}" = "--bench" ]; then
  packages+=(lsyncd inotify-tools time hyperfine)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "treesync: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
