#!/usr/bin/env bash
# Builds treesync and shows it mirroring the bundled sample tree: a full
# sync, an independent check that the mirror equals the source, then a few
# changes and the sync that carries them over.
# Installs missing Debian packages first (apt-get; root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=${DEMO_DIR:-/tmp/treesync-demo}

"$top/scripts/deps.sh"
meson setup build >/dev/null 2>&1 || true
meson compile -C build >/dev/null
daemon="$top/build/treesyncd"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$demo"
mkdir -p "$demo"
cp -a "$top/demo/sample" "$demo/src"
sed "s|@DEMO@|$demo|g" "$top/demo/demo.conf.in" >"$demo/treesync.conf"

say "The config ($demo/treesync.conf) checks out"
"$daemon" --check-config -c "$demo/treesync.conf"

say "Full sync of $demo/src into $demo/mirror"
"$daemon" --once -c "$demo/treesync.conf"

say "An independent check: the mirror equals the source (excluded *.swp aside)"
python3 "$top/tests/tools/treecmp.py" --exclude '*.swp' --exclude '*~' \
  "$demo/src" "$demo/mirror"

say "Changing the source: edit a file, add a directory, remove a file"
echo "a new line" >>"$demo/src/docs/notes.md"
mkdir -p "$demo/src/new/deeper"
echo "fresh" >"$demo/src/new/deeper/file.txt"
rm "$demo/src/src/lib/util.h"
"$daemon" --once -c "$demo/treesync.conf"
python3 "$top/tests/tools/treecmp.py" --exclude '*.swp' --exclude '*~' \
  "$demo/src" "$demo/mirror"

say "Done. Try it yourself:"
cat <<MSG
  edit files under $demo/src, then
  $daemon --once -c $demo/treesync.conf
MSG
