#!/usr/bin/env bash
# RSS of treesyncd when its watches are in place ("watching N directories"
# line), inotify against fanotify, on an empty tree and on a tree of DIRS
# directories (bench/live_probe.py mktree, the tree of bench-live.sh's
# set-up part); rounds interleaved. Bytes per directory = (RSS on the tree
# - RSS on the empty tree) / DIRS. Run as root (fanotify), from a build:
#   TREESYNCD=build/treesyncd DIRS=50000 ROUNDS=3 bench/watch-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TREESYNCD=$(realpath "${TREESYNCD:-build/treesyncd}")
DIRS=${DIRS:-50000}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d /tmp/treesync-watch-memory.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
python3 bench/live_probe.py mktree "$WORK/tree" --dirs "$DIRS" >/dev/null
mkdir "$WORK/empty"
find "$WORK/tree" -type d | wc -l >/dev/null    # warm the caches
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in inotify fanotify; do
    for tree in empty tree; do
      tag=$mode.$tree.$r
      mkdir "$WORK/dst.$tag"
      cat >"$WORK/$tag.conf" <<EOC
workers = 4;
delay_ms = 0;
log_file = "$WORK/$tag.log";
control_socket = "$WORK/$tag.sock";
watch = "$mode";
syncs = ( { name = "b"; source = "$WORK/$tree"; destinations = ( "$WORK/dst.$tag" ); } );
EOC
      python3 bench/live_probe.py setup --tool "$mode" --round "$r" --tree "$tree" \
        --pidfile "$WORK/$tag.pid" --out "$WORK/rss.tsv" --timeout 600 --log "$WORK/$tag.log" \
        --ready 'watching [0-9]+ directories under' --done 'full +\. -> .*entries checked' \
        -- "$TREESYNCD" -f -c "$WORK/$tag.conf" >/dev/null
      rm -rf "$WORK/dst.$tag"
    done
  done
done
# rss.tsv: tool round tree ... rss_ready(KiB) at column 7 (live_probe.py)
python3 - "$WORK/rss.tsv" "$DIRS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
dirs = int(sys.argv[2])
for tool in ("inotify", "fanotify"):
    per = []
    for r in sorted({x[2] for x in rows if x[1] == tool}):
        kib = {x[3]: float(x[6]) for x in rows if x[1] == tool and x[2] == r and x[6]}
        if "empty" in kib and "tree" in kib:
            per.append((kib["tree"] - kib["empty"]) * 1024 / dirs)
    print("%-8s RSS at ready, bytes per directory: %s (median %.0f)" % (
        tool, ", ".join("%.0f" % p for p in per), statistics.median(per)))
PY
