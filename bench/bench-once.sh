#!/usr/bin/env bash
# bench-once.sh -- full-sync benchmark: `treesyncd --once` vs `rsync -a` vs `cp -a`.
#
# Environment (all optional):
#   TREESYNCD  daemon binary            (default: <repo>/build/src/treesyncd,
#                                       else <repo>/build/treesyncd)
#   RUNS       samples per measurement  (default: 3)
#   FILES      files in the tree        (default: 50000)
#   DIRS       directories in the tree  (default: FILES/20, i.e. 2500)
#   BIG        size of the big file     (default: 2 GiB; bytes or 2G, 512M ...)
#   WORK       scratch directory on a real disk, not tmpfs
#                                       (default: /var/tmp/treesync-bench)
#   WORKERS    treesyncd `workers`      (default: 4)
#   SEED       gentree seed             (default: 1)
#   WARMUP     untimed full-tree copies with each tool before run 1
#                                       (default: 1; 0 to skip)
#   SETTLE     seconds to wait after a mass delete in WORK (by this script,
#              now or in an earlier run) before measuring (default: 120)
#
# Measures, RUNS times each, with the tools interleaved within every run
# (treesync, rsync, cp; treesync, rsync, cp; ...) and always into a fresh,
# never-used destination directory (all tree runs first, then the big file):
#   full   copy of the FILES-file tree into an empty destination
#   noop   re-run onto the destination that is already in sync (treesync, rsync)
#   big    copy of a tree holding only one BIG-byte file, under /usr/bin/time
#          (wall time and peak RSS of the largest process)
# The page cache is warm: sources are read once before the loop and there is
# no `sync` or drop_caches between runs.
#
# Every treesync destination is checked with tests/tools/treecmp.py; a
# mismatch aborts the benchmark (the destinations are then kept for
# inspection and removed by the next run).  Results go to
# bench/results/once-YYYYmmdd-HHMMSS.md and to stdout.

set -euo pipefail
set -E
trap 'echo "bench-once.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GENTREE=$ROOT/tests/tools/gentree.py
TREECMP=$ROOT/tests/tools/treecmp.py

if [[ -z ${TREESYNCD:-} ]]; then
    TREESYNCD=$ROOT/build/src/treesyncd
    [[ -x $TREESYNCD || ! -x $ROOT/build/treesyncd ]] || TREESYNCD=$ROOT/build/treesyncd
fi
RUNS=${RUNS:-3}
FILES=${FILES:-50000}
DIRS=${DIRS:-$((FILES / 20))}
BIG=${BIG:-2147483648}
WORK=${WORK:-/var/tmp/treesync-bench}
WORKERS=${WORKERS:-4}
SEED=${SEED:-1}
WARMUP=${WARMUP:-1}
SETTLE=${SETTLE:-120}

die() { echo "bench-once.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------ checks
for v in RUNS FILES DIRS WORKERS SEED WARMUP SETTLE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, not '${!v}'"
done
((RUNS >= 1)) || die "RUNS must be >= 1"
BIG=$(numfmt --from=iec "$BIG" 2>/dev/null) || die "BIG is not a size: '$BIG'"
[[ $WORK == /* ]] || die "WORK must be an absolute path"
# the path goes into libconfig strings and sockets: keep it plain
[[ $WORK =~ ^[A-Za-z0-9._/+-]+$ ]] || die "WORK may only contain [A-Za-z0-9._/+-]"
[[ -x $TREESYNCD ]] || die "no executable TREESYNCD at $TREESYNCD (build it, or set TREESYNCD)"
TREESYNCD=$(cd "$(dirname "$TREESYNCD")" && pwd)/$(basename "$TREESYNCD")
for t in rsync cp python3 /usr/bin/time numfmt; do
    command -v "$t" >/dev/null || die "$t not found"
done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
FSTYPE=$(stat -f -c %T "$WORK")
MNT_FSTYPE=$(findmnt -n -o FSTYPE --target "$WORK" 2>/dev/null || true)
case $FSTYPE in
    tmpfs|ramfs) die "WORK=$WORK is on $FSTYPE; the benchmark must run on a disk" ;;
esac

SRC_TREE=$WORK/src-tree
SRC_BIG=$WORK/src-big
STAMP_FILE=$WORK/sources.stamp
DELETED_FILE=$WORK/last-mass-delete   # mtime = end of the last big rm -rf
INFO_FILE=$WORK/sources.info
STAMP=$(date +%Y%m%d-%H%M%S)
RUN_DIR=$WORK/bench.$STAMP
DST=$RUN_DIR/dst
CONF_DIR=$RUN_DIR/conf
LOG_DIR=$RUN_DIR/log
SOCK_DIR=$RUN_DIR/s
TSV=$RUN_DIR/samples.tsv
RESULTS_DIR=$ROOT/bench/results
RESULTS=$RESULTS_DIR/once-$STAMP.md

# ------------------------------------------------------------------ sources
stamp="gentree=$(sha256sum "$GENTREE" | cut -c1-16) files=$FILES dirs=$DIRS seed=$SEED big=$BIG plain"
if [[ -d $SRC_TREE && -d $SRC_BIG && -f $STAMP_FILE && $(cat "$STAMP_FILE") == "$stamp" ]]; then
    echo "# reusing sources in $WORK ($stamp)"
else
    echo "# generating sources in $WORK ($stamp)"
    rm -f "$STAMP_FILE"
    if [[ -e $SRC_TREE || -e $SRC_BIG ]]; then
        rm -rf "$SRC_TREE" "$SRC_BIG"
        touch "$DELETED_FILE"
    fi
    {
        python3 "$GENTREE" "$SRC_TREE" --files "$FILES" --dirs "$DIRS" --seed "$SEED" --plain
        python3 "$GENTREE" "$SRC_BIG" --files 0 --dirs 0 --seed "$SEED" --plain --big-file "$BIG"
    } | tee "$INFO_FILE"
    echo "$stamp" >"$STAMP_FILE"
fi

# leftovers of an aborted benchmark: remove before the loop, never during it
shopt -s nullglob
old=("$WORK"/bench.*/dst)
shopt -u nullglob
if ((${#old[@]})); then
    echo "# removing destinations left by an earlier run: ${old[*]}"
    rm -rf "${old[@]}"
    touch "$DELETED_FILE"
fi

# disk space: (RUNS + WARMUP) x 3 tree copies, plus 3 big-file copies (removed each run)
tree_alloc=$(du -s -B1 "$SRC_TREE" | cut -f1)
need=$(((RUNS + WARMUP) * 3 * tree_alloc + 3 * BIG + (1 << 30)))
avail=$(df -P -B1 "$WORK" | awk 'NR == 2 { print $4 }')
((avail > need)) || die "need about $(numfmt --to=iec "$need") free in $WORK, have $(numfmt --to=iec "$avail")"

mkdir -p "$DST" "$CONF_DIR" "$LOG_DIR" "$SOCK_DIR" "$RESULTS_DIR"
((${#SOCK_DIR} + 12 < 108)) || die "WORK is too long for a unix socket path under it"
: >"$TSV"

# ext4 here re-creates files 2-3x slower for a minute or two after a mass
# rm -rf (FIELD-NOTES): let it settle before measuring
if [[ -e $DELETED_FILE ]]; then
    wait_s=$((SETTLE - ($(date +%s) - $(stat -c %Y "$DELETED_FILE"))))
    if ((wait_s > 0)); then
        echo "# waiting ${wait_s}s: a mass delete in $WORK ended less than ${SETTLE}s ago (SETTLE)"
        sleep "$wait_s"
    fi
fi

# warm the page cache with the sources (the benchmark measures warm caches);
# one sync before the first run so that it does not start under the writeback
# of earlier activity -- there is none between runs
echo "# reading the sources once (warm page cache)"
find "$SRC_TREE" "$SRC_BIG" -type f -print0 | xargs -0 cat >/dev/null
sync -f "$WORK"

# ------------------------------------------------------------------ helpers
# Runs "$@" and writes its wall time (monotonic clock, seconds) to $1.
TIMER='import subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[2:])
t1 = time.monotonic()
with open(sys.argv[1], "w") as f:
    f.write("%.6f\n" % (t1 - t0))
sys.exit(rc)'

# write_conf CONF TAG SRC DST: a treesyncd config for one sync pair
write_conf() {
    cat >"$1" <<EOF
# generated by bench/bench-once.sh
workers = $WORKERS;
log_file = "$LOG_DIR/treesyncd.$2.log";
log_level = "warn";
control_socket = "$SOCK_DIR/$2.sock";
syncs = (
  {
    name = "bench";
    source = "$3";
    destinations = ( "$4" );
  }
);
EOF
}

# measure KIND TOOL RUN CMD...: time CMD, append a sample to $TSV
measure() {
    local kind=$1 tool=$2 run=$3
    shift 3
    local out=$LOG_DIR/$kind.$tool.$run.out tfile=$RUN_DIR/time.tmp rfile=$RUN_DIR/rss.tmp rss=""
    rm -f "$tfile" "$rfile"
    if [[ $kind == big ]]; then
        if ! python3 -c "$TIMER" "$tfile" /usr/bin/time -f %M -o "$rfile" "$@" >"$out" 2>&1; then
            cat "$out" "$rfile" >&2 || true
            die "$kind/$tool run $run failed: $*"
        fi
        rss=$(tail -n 1 "$rfile")
    else
        if ! python3 -c "$TIMER" "$tfile" "$@" >"$out" 2>&1; then
            cat "$out" >&2 || true
            die "$kind/$tool run $run failed: $*"
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$tool" "$run" "$(cat "$tfile")" "$rss" >>"$TSV"
    printf '  %-5s %-8s run %s: %8.3f s%s\n' "$kind" "$tool" "$run" "$(cat "$tfile")" \
        "${rss:+  peak RSS $rss KiB}"
}

# verify WHAT SRC DST: treecmp must find DST equal to SRC
VERIFY_LOG=$RUN_DIR/verify.log
verify() {
    local what=$1 out
    if ! out=$(python3 "$TREECMP" --no-rsync "$2" "$3" 2>&1); then
        echo "$out" >&2
        die "treesync destination $3 ($what) differs from $2; kept for inspection"
    fi
    echo "$what: ${out##*$'\n'}" | tee -a "$VERIFY_LOG"
}

# ------------------------------------------------------------------ warm-up
# The first copy after generating (or after a pause) is often much slower
# than the following ones; run each tool once, untimed, and throw it away.
for ((i = 1; i <= WARMUP; i++)); do
    echo "# warm-up $i/$WARMUP (untimed)"
    write_conf "$CONF_DIR/warmup.$i.conf" "warm$i" "$SRC_TREE" "$DST/warmup.treesync.$i"
    mkdir "$DST/warmup.treesync.$i" "$DST/warmup.rsync.$i"
    "$TREESYNCD" --once -c "$CONF_DIR/warmup.$i.conf" >"$LOG_DIR/warmup.treesync.$i.out" 2>&1 ||
        { cat "$LOG_DIR/warmup.treesync.$i.out" >&2; die "warm-up: treesyncd --once failed"; }
    rsync -a "$SRC_TREE/" "$DST/warmup.rsync.$i/"
    cp -a "$SRC_TREE" "$DST/warmup.cp.$i"
done

# ------------------------------------------------------------------ runs
echo "# $RUNS runs per measurement, order in each run: treesync rsync cp; destinations under $DST"
# Phase 1: the tree (full sync and no-op re-run); phase 2: the big file.
# Separate phases keep the big files' writeback out of the tree timings.
for ((i = 1; i <= RUNS; i++)); do
    echo "# tree, run $i/$RUNS"
    # full sync of the tree
    d_ts=$DST/treesync.tree.$i d_rs=$DST/rsync.tree.$i d_cp=$DST/cp.tree.$i
    write_conf "$CONF_DIR/full.$i.conf" "full$i" "$SRC_TREE" "$d_ts"
    write_conf "$CONF_DIR/noop.$i.conf" "noop$i" "$SRC_TREE" "$d_ts"
    mkdir "$d_ts" "$d_rs"
    measure full treesync "$i" "$TREESYNCD" --once -c "$CONF_DIR/full.$i.conf"
    measure full rsync "$i" rsync -a "$SRC_TREE/" "$d_rs/"
    measure full cp "$i" cp -a "$SRC_TREE" "$d_cp"
    verify "run $i full tree" "$SRC_TREE" "$d_ts"

    # no-op re-run onto an in-sync destination
    measure noop treesync "$i" "$TREESYNCD" --once -c "$CONF_DIR/noop.$i.conf"
    measure noop rsync "$i" rsync -a "$SRC_TREE/" "$d_rs/"
    verify "run $i no-op" "$SRC_TREE" "$d_ts"
done

for ((i = 1; i <= RUNS; i++)); do
    echo "# big file, run $i/$RUNS"
    b_ts=$DST/treesync.big.$i b_rs=$DST/rsync.big.$i b_cp=$DST/cp.big.$i
    write_conf "$CONF_DIR/big.$i.conf" "big$i" "$SRC_BIG" "$b_ts"
    mkdir "$b_ts" "$b_rs"
    measure big treesync "$i" "$TREESYNCD" --once -c "$CONF_DIR/big.$i.conf"
    measure big rsync "$i" rsync -a "$SRC_BIG/" "$b_rs/"
    measure big cp "$i" cp -a "$SRC_BIG" "$b_cp"
    verify "run $i big file" "$SRC_BIG" "$b_ts"
    # three files: cheap to delete, and it bounds disk use and dirty pages
    rm -rf "$b_ts" "$b_rs" "$b_cp"
done

# ------------------------------------------------------------------ report
cpu=$(grep -m1 -E '^(model name|Model|Hardware|cpu model)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
ts_version=$(timeout 5 "$TREESYNCD" --version 2>&1 | head -n 1 || true)
warn_lines=$(cat "$LOG_DIR"/treesyncd.*.log 2>/dev/null | wc -l || true)

export TSV RESULTS STAMP RUNS FILES DIRS BIG WORKERS SEED WARMUP SETTLE WORK FSTYPE MNT_FSTYPE SRC_TREE SRC_BIG DST \
    TREESYNCD CONF_DIR LOG_DIR INFO_FILE VERIFY_LOG cpu mem os ts_version warn_lines
python3 - <<'PY'
import os, platform, statistics, subprocess

E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(E["TSV"]) if l.strip()]
data = {}      # (kind, tool) -> {run: (secs, rss)}
for kind, tool, run, secs, rss in rows:
    data.setdefault((kind, tool), {})[int(run)] = (float(secs), int(rss) if rss else None)

def samples(kind, tool, idx=0):
    d = data.get((kind, tool), {})
    return [d[r][idx] for r in sorted(d)]

def cell(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    return "**%s** (%s)" % (fmt(statistics.median(vals)), ", ".join(fmt(v) for v in vals))

def ratio(kind, num, den="treesync"):
    a, b = data.get((kind, num), {}), data.get((kind, den), {})
    rs = [a[r][0] / b[r][0] for r in sorted(a) if r in b and b[r][0] > 0]
    return cell(rs, lambda v: "%.2f×" % v)

secs = lambda v: "%.3f s" % v
mib = lambda v: "%.1f MiB" % (v / 1024)
big = int(E["BIG"])
info = open(E["INFO_FILE"]).read().strip() if os.path.exists(E["INFO_FILE"]) else "?"
sh = lambda *c: subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0]

out = []
w = out.append
w("# treesync full-sync benchmark, %s\n" % E["STAMP"])
w("Medians in bold, all samples in brackets (run order).  Ratios are per-run "
  "(same-run) ratios, median and samples; > 1× means treesync was faster.\n")
w("| measurement | treesync | rsync -a | cp -a | rsync / treesync | cp / treesync |")
w("| --- | --- | --- | --- | --- | --- |")
w("| full sync, %s files, %s dirs | %s | %s | %s | %s | %s |" % (
    E["FILES"], E["DIRS"], cell(samples("full", "treesync"), secs), cell(samples("full", "rsync"), secs),
    cell(samples("full", "cp"), secs), ratio("full", "rsync"), ratio("full", "cp")))
w("| no-op re-run (in sync) | %s | %s | – | %s | – |" % (
    cell(samples("noop", "treesync"), secs), cell(samples("noop", "rsync"), secs), ratio("noop", "rsync")))
w("| one %s file | %s | %s | %s | %s | %s |" % (
    sh("numfmt", "--to=iec-i", "--suffix=B", str(big)),
    cell(samples("big", "treesync"), secs), cell(samples("big", "rsync"), secs),
    cell(samples("big", "cp"), secs), ratio("big", "rsync"), ratio("big", "cp")))
w("| peak RSS on the big file | %s | %s | %s | | |" % (
    cell(samples("big", "treesync", 1), mib), cell(samples("big", "rsync", 1), mib),
    cell(samples("big", "cp", 1), mib)))
w("")
w("Peak RSS is GNU time's %M: the largest single process (rsync runs as "
  "several processes; treesyncd's threads share one).")
w("")
w("## Machine\n")
w("- CPUs: %s (nproc), %s" % (sh("nproc"), E["cpu"] or "unknown model"))
w("- memory: %s" % E["mem"])
w("- OS: %s, kernel %s" % (E["os"], platform.release()))
w("- WORK: %s on %s (`stat -f -c %%T`; mounted as %s)" % (E["WORK"], E["FSTYPE"], E["MNT_FSTYPE"] or "?"))
w("- treesyncd: %s (%s)" % (E["TREESYNCD"], E["ts_version"] or "no --version output"))
w("- %s; %s; %s" % (sh("rsync", "--version"), sh("cp", "--version"), "Python " + platform.python_version()))
w("")
w("## Setup\n")
w("- RUNS=%s, FILES=%s, DIRS=%s, BIG=%s, WORKERS=%s, SEED=%s, WARMUP=%s" % (
    E["RUNS"], E["FILES"], E["DIRS"], E["BIG"], E["WORKERS"], E["SEED"], E["WARMUP"]))
w("- sources (gentree.py --plain):")
for line in info.splitlines():
    w("  - `%s`" % line)
w("- warm page cache: the sources are read once before the first run; no "
  "`sync` or `drop_caches` between runs (dirty pages of earlier runs may "
  "still be written back during later ones).")
w("- before run 1: waited, if needed, until %s s after the last mass delete in WORK (ext4 "
  "allocates inodes slowly for a while after one), one `sync -f WORK`." % E["SETTLE"])
w("- before run 1: %s untimed warm-up round(s) of full-tree copies with each tool." % E["WARMUP"])
w("- every copy goes into a fresh, never-used directory; the tools run "
  "interleaved (treesync, rsync, cp in each run); first RUNS runs of the tree "
  "(full sync, then the no-op re-run), then RUNS runs of the big file; the tree "
  "destinations are removed only after the last run, the big-file destinations "
  "after each run.")
w("- treesync and rsync get an empty, just-created destination directory; "
  "cp -a creates its own.")
w("- treesync `log_level = \"warn\"`: %s log lines written in total." % E["warn_lines"])
w("")
w("## Commands\n")
w("```")
w("treesyncd: %s --once -c CONF   (CONF: %s/{full,noop,big}.N.conf, workers = %s)" % (
    E["TREESYNCD"], E["CONF_DIR"], E["WORKERS"]))
w("full:  %s --once -c full.N.conf  |  rsync -a %s/ %s/rsync.tree.N/  |  cp -a %s %s/cp.tree.N" % (
    E["TREESYNCD"], E["SRC_TREE"], E["DST"], E["SRC_TREE"], E["DST"]))
w("noop:  %s --once -c noop.N.conf (onto treesync.tree.N)  |  rsync -a %s/ %s/rsync.tree.N/" % (
    E["TREESYNCD"], E["SRC_TREE"], E["DST"]))
w("big:   /usr/bin/time -f %%M CMD with CMD = %s --once -c big.N.conf  |  rsync -a %s/ %s/rsync.big.N/  |  cp -a %s %s/cp.big.N" % (
    E["TREESYNCD"], E["SRC_BIG"], E["DST"], E["SRC_BIG"], E["DST"]))
w("check: python3 tests/tools/treecmp.py --no-rsync SRC %s/treesync.{tree,big}.N" % E["DST"])
w("timing: time.monotonic() around subprocess.call(CMD) (python3)")
w("```")
w("")
w("Config of run 1 (full sync):")
w("")
w("```")
w(open(os.path.join(E["CONF_DIR"], "full.1.conf")).read().rstrip())
w("```")
w("")
w("## Checks\n")
for line in open(E["VERIFY_LOG"]):
    w("- %s" % line.strip())
w("")
w("## Samples\n")
w("| kind | tool | run | seconds | peak RSS KiB |")
w("| --- | --- | --- | --- | --- |")
for r in rows:
    w("| %s |" % " | ".join(x or "–" for x in r))
text = "\n".join(out) + "\n"
open(E["RESULTS"], "w").write(text)
print(text)
PY

echo "# results: $RESULTS"
echo "# removing destinations"
rm -rf "$DST"
touch "$DELETED_FILE"
echo "# note: the next benchmark in $WORK waits until ${SETTLE}s after this delete"
rm -f "$RUN_DIR"/time.tmp "$RUN_DIR"/rss.tmp
