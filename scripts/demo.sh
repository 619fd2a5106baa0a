#!/usr/bin/env bash
# Builds treesync and shows it mirroring the bundled sample tree live: the
# daemon starts (full sync first), the script changes the source while you
# watch the sync log, an independent check confirms the mirror equals the
# source, and then the daemon keeps running for you to try (Ctrl-C stops
# it; without a terminal the demo stops by itself).
# Installs missing Debian packages first (apt-get; root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=${DEMO_DIR:-/tmp/treesync-demo}

"$top/scripts/deps.sh"
meson setup build >/dev/null 2>&1 || true
meson compile -C build >/dev/null
daemon="$top/build/treesyncd"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; sleep 0.5; }
check() {
  python3 "$top/tests/tools/treecmp.py" --exclude '*.swp' --exclude '*~' \
    "$demo/src" "$demo/mirror"
}

rm -rf "$demo"
mkdir -p "$demo"
cp -a "$top/demo/sample" "$demo/src"
sed "s|@DEMO@|$demo|g" "$top/demo/demo.conf.in" >"$demo/treesync.conf"

say "The config ($demo/treesync.conf) checks out"
"$daemon" --check-config -c "$demo/treesync.conf"

say "Starting the daemon: $daemon -f -c $demo/treesync.conf"
"$daemon" -f -c "$demo/treesync.conf" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 1

say "An independent check: the mirror equals the source (*.swp excluded)"
check

say "Editing a file, adding a directory tree, renaming and deleting"
echo "a new line" >>"$demo/src/docs/notes.md"
mkdir -p "$demo/src/new/deeper" && echo "fresh" >"$demo/src/new/deeper/file.txt"
mv "$demo/src/src/lib" "$demo/src/src/library"
rm "$demo/src/README.txt"
sleep 1
check

say "What the daemon says about it: treesyncctl status"
"$top/build/treesyncctl" -s "$demo/control.sock" status

if [ -t 0 ] && [ -t 1 ]; then
  say "The daemon keeps running: edit files under $demo/src and watch. Ctrl-C stops it."
  wait $pid || true
else
  say "Stopping the daemon (SIGTERM)"
  kill -TERM $pid
  wait $pid
fi
trap - EXIT
