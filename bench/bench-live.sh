#!/usr/bin/env bash
# bench-live.sh -- live-sync benchmark: `treesyncd -f` vs lsyncd (default.direct)
# vs a naive `inotifywait -m -r | while read; do cp; done` loop, in one run.
#
# Environment (all optional):
#   TREESYNCD   daemon binary              (default: <repo>/build/treesyncd)
#   SAMPLES     latency samples per tool   (default: 200)
#   ROUNDS      latency rounds; each round runs SAMPLES/ROUNDS samples per
#               tool, in an order that rotates from round to round (default: 4)
#   DELAYS      extra treesync delay_ms values for the latency table
#               (default: "10 50"; delay_ms = 0 is always measured)
#   POLL_US     destination poll interval of the latency probe, microseconds
#               (default: 200)
#   BURST       files in the burst          (default: 10000; 0 skips the burst)
#   BURST_DIRS  directories the burst spreads over (default: 10)
#   BURST_RUNS  burst runs of treesync, each followed by cp -a (default: 3)
#   BURST_OTHERS  burst runs of lsyncd and of the inotifywait loop, in the
#               first BURST_OTHERS runs, order rotating (default: 1: they
#               take minutes per run here)
#   BURST_CAP   seconds after the first write a burst run may take before the
#               probe gives up and reports how far it got (default: 90)
#   DIRS        directories in the watch set-up tree (default: 50000; 0 skips)
#   SETUP_RUNS  watch set-up runs per tool, order rotating (default: 2)
#   WORK        scratch directory on a real disk, not tmpfs
#               (default: /var/tmp/treesync-bench-live)
#   WORKERS     treesyncd `workers`        (default: 4)
#   WATCH       treesyncd `watch`          (default: inotify, the mode the
#               figures in docs/performance-live.md were taken with;
#               bench/watch-memory.sh compares it with fanotify)
#   SETTLE      seconds to wait after a mass delete in WORK before measuring
#               (default: 120)
#   KEEP        1: keep the scratch directories after a successful run
#               (default: 0: delete them; they are large)
#
# Measures, with every tool on its own fresh, never-used source and
# destination directories:
#   latency  write + close a new 4 KiB file of random bytes in SRC, poll DST
#            every POLL_US until it holds the same bytes; SAMPLES per tool.
#            All five live copies (treesync delay_ms 0, lsyncd, the inotifywait
#            loop, treesync delay_ms 10 and 50) run at the same time on their
#            own pairs, idle except the one being probed; blocks of
#            SAMPLES/ROUNDS samples rotate over them.
#   burst    BURST new 4 KiB files written as fast as possible into SRC
#            (BURST_DIRS existing directories); time from the first write until
#            every file is in DST with its size; `cp -a` of the same files into
#            a fresh directory right after treesync's run, for the ratio.
#   setup    a tree of DIRS directories (and an empty one, the baseline): time
#            from the start of the tool until its watches are in place (its own
#            log line), VmRSS of its process then and 1 s after its initial
#            sync -> bytes per watched directory.
# Every treesync destination is compared with its source by
# tests/tools/treecmp.py --no-rsync at the end (after the daemon was stopped);
# a difference aborts the bench and keeps the directories for inspection.
# fs.inotify.max_user_watches / max_user_instances are raised for the run
# when they are too small, and restored on exit (also on failure).
# Results go to bench/results/live-YYYYmmdd-HHMMSS.md and to stdout.

set -euo pipefail
set -E
trap 'echo "bench-live.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROBE=$ROOT/bench/live_probe.py
TREECMP=$ROOT/tests/tools/treecmp.py
TREESYNCD=${TREESYNCD:-$ROOT/build/treesyncd}
SAMPLES=${SAMPLES:-200}
ROUNDS=${ROUNDS:-4}
DELAYS=${DELAYS:-10 50}
POLL_US=${POLL_US:-200}
BURST=${BURST:-10000}
BURST_DIRS=${BURST_DIRS:-10}
BURST_RUNS=${BURST_RUNS:-3}
BURST_OTHERS=${BURST_OTHERS:-1}
BURST_CAP=${BURST_CAP:-90}
DIRS=${DIRS:-50000}
WATCH=${WATCH:-inotify}
SETUP_RUNS=${SETUP_RUNS:-2}
WORK=${WORK:-/var/tmp/treesync-bench-live}
WORKERS=${WORKERS:-4}
SETTLE=${SETTLE:-120}
KEEP=${KEEP:-0}

die() { echo "bench-live.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------ checks
for v in SAMPLES ROUNDS POLL_US BURST BURST_DIRS BURST_RUNS BURST_OTHERS BURST_CAP DIRS SETUP_RUNS WORKERS SETTLE KEEP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, not '${!v}'"
done
for d in $DELAYS; do
    [[ $d =~ ^[0-9]+$ ]] || die "DELAYS must be a list of integers, not '$DELAYS'"
done
((ROUNDS >= 1)) || die "ROUNDS must be >= 1"
((SAMPLES % ROUNDS == 0)) || die "SAMPLES ($SAMPLES) must be a multiple of ROUNDS ($ROUNDS)"
((BURST == 0 || (BURST_DIRS >= 1 && BURST_RUNS >= 1 && BURST_CAP >= 1))) ||
    die "BURST_DIRS, BURST_RUNS and BURST_CAP must be >= 1"
((BURST_OTHERS <= BURST_RUNS)) || die "BURST_OTHERS must be <= BURST_RUNS"
((DIRS == 0 || DIRS >= 2)) || die "DIRS must be 0 or >= 2"
((DIRS == 0 || SETUP_RUNS >= 1)) || die "SETUP_RUNS must be >= 1"
[[ $WORK == /* ]] || die "WORK must be an absolute path"
# the path goes into libconfig and Lua strings and sockets: keep it plain
[[ $WORK =~ ^[A-Za-z0-9._/+-]+$ ]] || die "WORK may only contain [A-Za-z0-9._/+-]"
[[ -x $TREESYNCD ]] || die "no executable TREESYNCD at $TREESYNCD (ninja -C build, or set TREESYNCD)"
TREESYNCD=$(cd "$(dirname "$TREESYNCD")" && pwd)/$(basename "$TREESYNCD")
for t in lsyncd inotifywait rsync cp setsid python3; do
    command -v "$t" >/dev/null || die "$t not found"
done
((EUID == 0)) || die "run as root (the inotify sysctls may need raising)"

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
FSTYPE=$(stat -f -c %T "$WORK")
MNT_FSTYPE=$(findmnt -n -o FSTYPE --target "$WORK" 2>/dev/null || true)
case $FSTYPE in
    tmpfs|ramfs) die "WORK=$WORK is on $FSTYPE; the benchmark must run on a disk" ;;
esac

DELETED_FILE=$WORK/last-mass-delete   # mtime = end of the last big rm -rf
STAMP=$(date +%Y%m%d-%H%M%S)
RUN_DIR=$WORK/live.$STAMP
CONF_DIR=$RUN_DIR/conf
LOG_DIR=$RUN_DIR/log
SOCK_DIR=$RUN_DIR/s
TSV=$RUN_DIR/samples.tsv
PHASES=$RUN_DIR/phases.tsv
VERIFY_LOG=$RUN_DIR/verify.log
LOOP=$RUN_DIR/inotify-loop.sh
RESULTS_DIR=$ROOT/bench/results
RESULTS=$RESULTS_DIR/live-$STAMP.md
T_START=$(date +%s)
# other sessions may rebuild the binary while this runs: note what was measured
bin_id() { echo "sha256 $(sha256sum "$TREESYNCD" | cut -c1-16), mtime $(date -u -r "$TREESYNCD" +%FT%TZ)"; }
BIN_START=$(bin_id)
GIT_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
GIT_DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l || true)

# leftovers of an aborted benchmark: remove before measuring, never during it
shopt -s nullglob
old=("$WORK"/live.*)
shopt -u nullglob
if ((${#old[@]})); then
    echo "# removing scratch left by an earlier run: ${old[*]}"
    rm -rf "${old[@]}"
    touch "$DELETED_FILE"
fi

# disk: the latency pairs are small; a burst run is 2 x BURST x 4 KiB (source
# and destination; 3 copies with cp -a); each copy of the directory tree ~ 4 KiB
# per directory (the source + treesync's and lsyncd's destinations per run)
need=$(((3 * BURST_RUNS + 4 * BURST_OTHERS) * BURST * 4096 + (1 + 2 * SETUP_RUNS) * DIRS * 4096 + (1 << 30)))
avail=$(df -P -B1 "$WORK" | awk 'NR == 2 { print $4 }')
((avail > need)) || die "need about $(numfmt --to=iec "$need") free in $WORK, have $(numfmt --to=iec "$avail")"

mkdir -p "$CONF_DIR" "$LOG_DIR" "$SOCK_DIR" "$RESULTS_DIR"
((${#SOCK_DIR} + 24 < 108)) || die "WORK is too long for a unix socket path under it"
: >"$TSV"
: >"$PHASES"
: >"$VERIFY_LOG"

# ------------------------------------------------------------------ cleanup
declare -A LIVE=() # process groups started here and not yet reaped (setsid: pid = pgid)
CUR_PIDFILE=       # the group live_probe.py setup is running, if any
declare -A SYS_ORIG=() SYS_SET=()  # inotify sysctls raised here: value found, value set
cleanup() {
    local rc=$? pid name cur
    trap - ERR
    set +e
    if [[ -n $CUR_PIDFILE && -s $CUR_PIDFILE ]]; then
        # live_probe.py stops its own child on SIGTERM/SIGINT; this is the backstop
        pid=$(cat "$CUR_PIDFILE")
        kill -0 "$pid" 2>/dev/null && LIVE[$pid]=1
    fi
    if ((${#LIVE[@]})); then
        for pid in "${!LIVE[@]}"; do
            kill -TERM -- "-$pid" 2>/dev/null
        done
        sleep 0.5
        for pid in "${!LIVE[@]}"; do
            kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
        done
    fi
    # put back what was found, unless another job changed the value meanwhile
    for name in "${!SYS_ORIG[@]}"; do
        cur=$(cat "/proc/sys/fs/inotify/$name")
        if [[ $cur == "${SYS_SET[$name]}" ]]; then
            echo "${SYS_ORIG[$name]}" >"/proc/sys/fs/inotify/$name" &&
                echo "# restored fs.inotify.$name = ${SYS_ORIG[$name]}"
        else
            echo "# fs.inotify.$name is $cur, not the ${SYS_SET[$name]} set here: someone else changed it; left alone" >&2
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ sysctls
# inotify watches / instances of this user in use right now (all processes run
# as root here)
inotify_in_use() {
    python3 - "$1" <<'PY'
import os, sys
what = sys.argv[1]
n = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                    continue
                if what == "instances":
                    n += 1
                else:
                    with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                        n += sum(1 for l in f if l.startswith("inotify wd:"))
            except OSError:
                pass
    except OSError:
        pass
print(n)
PY
}

# ensure_sysctl NAME EXTRA: max_user_NAME >= in use now + EXTRA (+ headroom)
ensure_sysctl() {
    local name=$1 extra=$2 file cur used want
    file=/proc/sys/fs/inotify/max_user_$1
    cur=$(cat "$file")
    used=$(inotify_in_use "$name")
    want=$((used + extra + extra / 5 + 64))
    if ((cur < want)); then
        # restore the value found before the first change only
        [[ -n ${SYS_ORIG[max_user_$name]:-} ]] || SYS_ORIG[max_user_$name]=$cur
        echo "$want" >"$file"
        SYS_SET[max_user_$name]=$want
        echo "# fs.inotify.max_user_$name: $cur -> $want for this run ($used in use, $extra needed)"
        echo "raised fs.inotify.max_user_$name from $cur to $want ($used in use by other processes, $extra needed)" >>"$RUN_DIR/sysctl.log"
    else
        echo "# fs.inotify.max_user_$name = $cur ($used in use, $extra needed): enough"
        echo "fs.inotify.max_user_$name = $cur ($used in use by other processes, $extra needed): unchanged" >>"$RUN_DIR/sysctl.log"
    fi
}
: >"$RUN_DIR/sysctl.log"
ORIG_MAX_WATCHES=$(cat /proc/sys/fs/inotify/max_user_watches)
ORIG_MAX_INSTANCES=$(cat /proc/sys/fs/inotify/max_user_instances)
MAX_QUEUED=$(cat /proc/sys/fs/inotify/max_queued_events)

# ------------------------------------------------------------------ settle
if [[ -e $DELETED_FILE ]]; then
    wait_s=$((SETTLE - ($(date +%s) - $(stat -c %Y "$DELETED_FILE"))))
    if ((wait_s > 0)); then
        echo "# waiting ${wait_s}s: a mass delete in $WORK ended less than ${SETTLE}s ago (SETTLE)"
        sleep "$wait_s"
    fi
fi
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

# machine load: loadavg and the busiest processes not started by this bench
snapshot_load() {
    {
        echo "### $1 ($(date -u +%H:%M:%SZ)): loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo '```'
        # the second of two iterations 1 s apart: the CPU use of that second
        top -b -n 2 -d 1 -w 160 -o %CPU 2>/dev/null | awk '/^top - /{n++} n == 2' | sed -n '7,15p' ||
            ps -eo pid,pcpu,etime,args --sort=-pcpu | head -9
        echo '```'
        echo
    } >>"$RUN_DIR/load.md"
}
: >"$RUN_DIR/load.md"

phase_mark() {   # phase_mark NAME start|end: wall clock, /proc/stat's cpu line, inotify sysctls
    local q=/proc/sys/fs/inotify
    printf '%s\t%s\t%s\t%s\t%s %s %s\n' "$1" "$2" "$(date +%s.%N)" "$(head -n 1 /proc/stat)" \
        "$(cat $q/max_queued_events)" "$(cat $q/max_user_watches)" "$(cat $q/max_user_instances)" >>"$PHASES"
}

# write_ts_conf CONF TAG SRC DST DELAY LEVEL
write_ts_conf() {
    cat >"$1" <<EOF
# generated by bench/bench-live.sh
workers = $WORKERS;
delay_ms = $5;
log_file = "$LOG_DIR/treesyncd.$2.log";
log_level = "$6";
control_socket = "$SOCK_DIR/$2.sock";
watch = "$WATCH";
syncs = (
  {
    name = "b";
    source = "$3";
    destinations = ( "$4" );
  }
);
EOF
}

# write_lsyncd_conf CONF TAG SRC DST
write_lsyncd_conf() {
    cat >"$1" <<EOF
-- generated by bench/bench-live.sh; lsyncd 2.2 accepts delay = 0 (">= 0")
settings {
    nodaemon = true,
    logfile = "$LOG_DIR/lsyncd.$2.log",
}
sync {
    default.direct,
    source = "$3",
    target = "$4",
    delay = 0,
}
EOF
}

cat >"$LOOP" <<'EOF'
#!/usr/bin/env bash
# generated by bench/bench-live.sh: the naive mirror loop
# usage: inotify-loop.sh SRC DST INOTIFYWAIT_STDERR
src=$1 dst=$2
inotifywait -m -r -e close_write,create,moved_to --format '%w%f' "$src" 2>"$3" |
    while IFS= read -r p; do
        rel=${p#"$src"/}
        if [[ -d $p ]]; then mkdir -p -- "$dst/$rel"; else cp -p -- "$p" "$dst/$rel"; fi
    done
EOF
chmod +x "$LOOP"

# start_tool TOOL TAG SRC DST: starts a live mirror in its own process group,
# sets STARTED
STARTED=
start_tool() {
    local tool=$1 tag=$2 src=$3 dst=$4
    case $tool in
        treesync*)
            local delay=0
            [[ $tool == treesync-d* ]] && delay=${tool#treesync-d}
            write_ts_conf "$CONF_DIR/$tag.conf" "$tag" "$src" "$dst" "$delay" warn
            setsid "$TREESYNCD" -f -c "$CONF_DIR/$tag.conf" >"$LOG_DIR/$tag.out" 2>&1 &
            ;;
        lsyncd)
            write_lsyncd_conf "$CONF_DIR/$tag.lua" "$tag" "$src" "$dst"
            setsid lsyncd "$CONF_DIR/$tag.lua" >"$LOG_DIR/$tag.out" 2>&1 &
            ;;
        inotifywait)
            setsid "$LOOP" "$src" "$dst" "$LOG_DIR/$tag.inotifywait.err" >"$LOG_DIR/$tag.out" 2>&1 &
            ;;
        *) die "unknown tool $tool" ;;
    esac
    STARTED=$!
    LIVE[$STARTED]=1
    # the inotifywait loop has no start-up sync: wait until its watches are set
    if [[ $tool == inotifywait ]]; then
        local i
        for ((i = 0; i < 6000; i++)); do
            grep -q 'Watches established' "$LOG_DIR/$tag.inotifywait.err" 2>/dev/null && break
            sleep 0.01
        done
    fi
    if ! python3 "$PROBE" ready --src "$src" --dst "$dst" --timeout 120; then
        cat "$LOG_DIR/$tag.out" >&2 || true
        die "$tool ($tag) did not start mirroring $src"
    fi
}

# stop_tool TOOL PID: SIGTERM to the group; treesyncd must exit 0
stop_tool() {
    local tool=$1 pid=$2 rc=0
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    unset "LIVE[$pid]"
    if [[ $tool == treesync* ]] && ((rc != 0)); then
        die "treesyncd (pid $pid) exited $rc on SIGTERM"
    fi
}

# verify WHAT SRC DST: treecmp must find DST equal to SRC (run at the end)
CHECKS=()
check_later() { CHECKS+=("$1|$2|$3"); }
verify() {
    local what=$1 out
    if ! out=$(python3 "$TREECMP" --no-rsync "$2" "$3" 2>&1); then
        echo "$out" | tail -n 30 >&2
        KEEP=1
        die "treesync destination $3 ($what) differs from $2; $RUN_DIR kept for inspection"
    fi
    echo "$what: ${out##*$'\n'}" | tee -a "$VERIFY_LOG"
}

snapshot_load "start"

# ------------------------------------------------------------------ latency
LAT_TOOLS=(treesync lsyncd inotifywait)
for d in $DELAYS; do
    ((d == 0)) || LAT_TOOLS+=("treesync-d$d")
done
if ((SAMPLES > 0)); then
    ensure_sysctl instances $((${#LAT_TOOLS[@]} + 4))
    ensure_sysctl watches $((${#LAT_TOOLS[@]} * 4))
    per=$((SAMPLES / ROUNDS))
    echo "# latency: ${LAT_TOOLS[*]}; $ROUNDS rounds x $per samples per tool, poll every ${POLL_US} us"
    phase_mark latency start
    declare -A LAT_PID
    for tool in "${LAT_TOOLS[@]}"; do
        base=$RUN_DIR/lat/$tool
        mkdir -p "$base/src" "$base/dst"
        start_tool "$tool" "lat.$tool" "$base/src" "$base/dst"
        LAT_PID[$tool]=$STARTED
    done
    n=${#LAT_TOOLS[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            tool=${LAT_TOOLS[$(((k + r - 1) % n))]}
            kill -0 "${LAT_PID[$tool]}" 2>/dev/null || die "$tool (latency) is no longer running"
            python3 "$PROBE" latency --src "$RUN_DIR/lat/$tool/src" --dst "$RUN_DIR/lat/$tool/dst" \
                --tool "$tool" --round "$r" --samples "$per" --out "$TSV" \
                --poll "$(printf '0.%06d' "$POLL_US")" --timeout 10
        done
    done
    sleep 1   # quiet: the last copies land
    for tool in "${LAT_TOOLS[@]}"; do
        stop_tool "$tool" "${LAT_PID[$tool]}"
        if [[ $tool == treesync* ]]; then
            check_later "latency $tool" "$RUN_DIR/lat/$tool/src" "$RUN_DIR/lat/$tool/dst"
        fi
    done
    phase_mark latency end
    snapshot_load "after the latency phase"
fi

# ------------------------------------------------------------------ burst
if ((BURST > 0)); then
    ensure_sysctl instances 4
    ensure_sysctl watches $((BURST_DIRS + 8))
    echo "# burst: $BURST files over $BURST_DIRS directories; treesync $BURST_RUNS runs (cp -a after each)," \
        "lsyncd and inotifywait $BURST_OTHERS; cap ${BURST_CAP}s"
    phase_mark burst start
    for ((r = 1; r <= BURST_RUNS; r++)); do
        if ((r <= BURST_OTHERS)); then B_TOOLS=(treesync lsyncd inotifywait); else B_TOOLS=(treesync); fi
        nb=${#B_TOOLS[@]}
        for ((k = 0; k < nb; k++)); do
            tool=${B_TOOLS[$(((k + r - 1) % nb))]}
            base=$RUN_DIR/burst/$tool.$r
            mkdir -p "$base/src" "$base/dst"
            for ((j = 0; j < BURST_DIRS; j++)); do
                mkdir "$(printf '%s/src/b%02d' "$base" "$j")" "$(printf '%s/dst/b%02d' "$base" "$j")"
            done
            start_tool "$tool" "burst.$tool.$r" "$base/src" "$base/dst"
            pid=$STARTED
            python3 "$PROBE" burst --src "$base/src" --dst "$base/dst" --tool "$tool" --round "$r" \
                --files "$BURST" --subdirs "$BURST_DIRS" --pid "$pid" --out "$TSV" --stall 20 --timeout "$BURST_CAP"
            sleep 0.5
            stop_tool "$tool" "$pid"
            if [[ $tool == treesync ]]; then
                check_later "burst run $r" "$base/src" "$base/dst"
                # cp -a of the same files (page cache warm), into a fresh directory
                tfile=$RUN_DIR/time.tmp
                python3 -c "$TIMER" "$tfile" cp -a "$base/src" "$RUN_DIR/burst/cp.$r" ||
                    die "cp -a $base/src failed"
                printf 'burstcp\tcp\t%s\t%s\n' "$r" "$(cat "$tfile")" >>"$TSV"
                printf '  burst   %-12s round %s: cp -a of the same files %.3f s\n' cp "$r" "$(cat "$tfile")"
            fi
        done
    done
    phase_mark burst end
    snapshot_load "after the burst phase"
fi

# ------------------------------------------------------------------ setup
if ((DIRS > 0)); then
    echo "# watch set-up: generating $DIRS directories"
    python3 "$PROBE" mktree "$RUN_DIR/watch/tree" --dirs "$DIRS" | tee "$RUN_DIR/tree.info"
    mkdir -p "$RUN_DIR/watch/empty"
    sync -f "$WORK"
    # warm the dentry/inode cache as every tool will find it
    find "$RUN_DIR/watch/tree" -type d | wc -l >/dev/null
    ensure_sysctl instances 4
    ensure_sysctl watches $((DIRS + 1))
    phase_mark setup start
    S_TOOLS=(treesync lsyncd inotifywait)
    for ((r = 1; r <= SETUP_RUNS; r++)); do
        for ((k = 0; k < 3; k++)); do
            tool=${S_TOOLS[$(((k + r - 1) % 3))]}
            for tree in empty tree; do
                tag=setup.$tool.$tree.$r
                src=$RUN_DIR/watch/$tree
                dst=$RUN_DIR/watch/dst.$tool.$tree.$r
                mkdir "$dst"
                CUR_PIDFILE=$RUN_DIR/$tag.pid
                case $tool in
                    treesync)
                        write_ts_conf "$CONF_DIR/$tag.conf" "$tag" "$src" "$dst" 0 info
                        args=(--log "$LOG_DIR/treesyncd.$tag.log" --ready 'watching [0-9]+ directories under'
                              --done 'full +\. -> .*entries checked' -- "$TREESYNCD" -f -c "$CONF_DIR/$tag.conf")
                        ;;
                    lsyncd)
                        write_lsyncd_conf "$CONF_DIR/$tag.lua" "$tag" "$src" "$dst"
                        args=(--log "$LOG_DIR/lsyncd.$tag.log" --ready 'Normal: recursive startup rsync'
                              --done 'Normal: Startup of .* finished' -- lsyncd "$CONF_DIR/$tag.lua")
                        ;;
                    inotifywait)
                        args=(--log "$LOG_DIR/$tag.inotifywait.err" --ready 'Watches established' --comm inotifywait
                              -- "$LOOP" "$src" "$dst" "$LOG_DIR/$tag.inotifywait.err")
                        ;;
                esac
                if ! python3 "$PROBE" setup --tool "$tool" --round "$r" --tree "$tree" \
                    --pidfile "$CUR_PIDFILE" --out "$TSV" --timeout 300 "${args[@]}"; then
                    if [[ $tool == treesync ]]; then
                        die "treesync watch set-up failed (see $LOG_DIR)"
                    fi
                fi
                rm -f "$CUR_PIDFILE"   # reaped by live_probe.py: never signal that pid again
                CUR_PIDFILE=
                if [[ $tool == treesync ]]; then
                    check_later "setup run $r ($tree)" "$src" "$dst"
                fi
            done
        done
    done
    phase_mark setup end
    snapshot_load "after the watch set-up phase"
fi

# ------------------------------------------------------------------ checks
echo "# checking every treesync destination (treecmp --no-rsync)"
for c in "${CHECKS[@]}"; do
    IFS='|' read -r what src dst <<<"$c"
    verify "$what" "$src" "$dst"
done
T_END=$(date +%s)
BIN_END=$(bin_id)
[[ $BIN_END == "$BIN_START" ]] ||
    echo "# WARNING: $TREESYNCD changed during the run ($BIN_START -> $BIN_END)" >&2

# ------------------------------------------------------------------ report
cpu=$(grep -m1 -E '^(model name|Model|Hardware|cpu model)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
ts_version=$(timeout 5 "$TREESYNCD" --version 2>&1 | head -n 1 || true)
lsyncd_version=$(lsyncd --version 2>&1 | head -n 1 || true)
inw_version=$(inotifywait --help 2>&1 | head -n 1 || true)
warn_lines=$(cat "$LOG_DIR"/treesyncd.lat.*.log "$LOG_DIR"/treesyncd.burst.*.log 2>/dev/null | wc -l || true)

export TSV PHASES RESULTS STAMP SAMPLES ROUNDS DELAYS POLL_US BURST BURST_DIRS BURST_RUNS BURST_OTHERS BURST_CAP \
    DIRS SETUP_RUNS \
    WORKERS WORK FSTYPE MNT_FSTYPE TREESYNCD CONF_DIR LOG_DIR VERIFY_LOG RUN_DIR LOOP MAX_QUEUED \
    ORIG_MAX_WATCHES ORIG_MAX_INSTANCES T_START T_END BIN_START BIN_END GIT_HEAD GIT_DIRTY cpu mem os ts_version lsyncd_version inw_version warn_lines
python3 - <<'PY'
import math, os, platform, statistics, subprocess

E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(E["TSV"]) if l.strip()]
out = []
w = out.append

def pct(vals, p):
    """Nearest-rank percentile."""
    v = sorted(vals)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]

ms = lambda s: "%.2f ms" % (s * 1e3)
med = statistics.median

w("# treesync live-sync benchmark, %s\n" % E["STAMP"])
w("Run time %d s (%s to %s UTC). Tools interleaved, each on fresh "
  "directories; see Setup for the order." % (
      int(E["T_END"]) - int(E["T_START"]),
      subprocess.run(["date", "-u", "-d", "@" + E["T_START"], "+%F %T"], stdout=subprocess.PIPE, text=True).stdout.strip(),
      subprocess.run(["date", "-u", "-d", "@" + E["T_END"], "+%T"], stdout=subprocess.PIPE, text=True).stdout.strip()))
w("")

# ---- latency
lat = {}
late = {}
for r in rows:
    if r[0] == "latency":
        tool, rnd, sec = r[1], int(r[2]), r[4]
        if sec == "timeout":
            late[tool] = late.get(tool, 0) + 1
        else:
            lat.setdefault(tool, {}).setdefault(rnd, []).append(float(sec))
label = {"treesync": "treesync (delay_ms = 0)", "lsyncd": "lsyncd default.direct (delay = 0)",
         "inotifywait": "inotifywait -m -r piped to a cp loop"}
if lat:
    w("## Change propagation latency (4 KiB file, close -> equal bytes in DST)\n")
    w("| tool | samples | p50 | p99 | max | p50 per round | timeouts (> 10 s) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for tool in ["treesync", "lsyncd", "inotifywait"]:
        if tool not in lat:
            continue
        allv = [v for rr in sorted(lat[tool]) for v in lat[tool][rr]]
        w("| %s | %d | **%s** | **%s** | %s | %s | %d |" % (
            label[tool], len(allv), ms(pct(allv, 50)), ms(pct(allv, 99)), ms(max(allv)),
            ", ".join("%.2f" % (pct(lat[tool][rr], 50) * 1e3) for rr in sorted(lat[tool])),
            late.get(tool, 0)))
    w("")
    if "treesync" in lat and "lsyncd" in lat:
        rr = [pct(lat["lsyncd"][k], 99) / pct(lat["treesync"][k], 99)
              for k in sorted(lat["treesync"]) if k in lat["lsyncd"]]
        w("Same-round ratio of p99, lsyncd / treesync: %s (> 1: treesync lower).\n"
          % ", ".join("%.2f×" % x for x in rr))
    w("### What delay_ms costs (treesync)\n")
    w("| delay_ms | samples | p50 | p99 | max | p50 − delay |")
    w("| --- | --- | --- | --- | --- | --- |")
    for d in ["0"] + [x for x in E["DELAYS"].split() if x != "0"]:
        tool = "treesync" if d == "0" else "treesync-d" + d
        if tool not in lat:
            continue
        allv = [v for rr in sorted(lat[tool]) for v in lat[tool][rr]]
        w("| %s | %d | %s | %s | %s | %s |" % (d, len(allv), ms(pct(allv, 50)), ms(pct(allv, 99)),
                                            ms(max(allv)), ms(pct(allv, 50) - int(d) / 1000)))
    w("")

# ---- burst
burst = {}
cps = {}
for r in rows:
    if r[0] == "burst":
        burst.setdefault(r[1], {})[int(r[2])] = (float(r[3]), float(r[4]), int(r[5]), r[6] if len(r) > 6 else "")
    elif r[0] == "burstcp":
        cps[int(r[2])] = float(r[3])
if burst:
    n = int(E["BURST"])
    w("## Burst: %s new 4 KiB files into %s directories\n" % (format(n, ","), E["BURST_DIRS"]))
    w("Time from the first write until every file is in DST with its size; "
      "the writer itself needs the \"write\" time, concurrently. `cp -a` copies "
      "the same files (treesync's source, right after its run) into a fresh "
      "directory. A run that had not finished %s s after the first write was "
      "stopped there (BURST_CAP): the row gives how many files had arrived and "
      "the time all would take at that average rate (an extrapolation, not a "
      "measurement).\n" % E["BURST_CAP"])
    w("| tool | run | write | all in DST | / cp -a of the same run |")
    w("| --- | --- | --- | --- | --- |")
    order = []
    for tool in ["treesync", "lsyncd", "inotifywait"]:
        for rnd in sorted(burst.get(tool, {})):
            wt, tt, done, why = burst[tool][rnd]
            if done == n:
                cell, rat = "%.3f s" % tt, ("%.2f×" % (tt / cps[rnd])) if rnd in cps else "–"
            else:
                cell = "**incomplete**: %s of %s files after %.1f s (%s)" % (format(done, ","), format(n, ","), tt, why)
                if done:
                    cell += "; ≈ %.0f s at that rate" % (tt * n / done)
                    rat = "≈ %.0f×" % (tt * n / done / cps[rnd]) if rnd in cps else "–"
                else:
                    rat = "–"
            w("| %s | %d | %.3f s | %s | %s |" % (tool, rnd, wt, cell, rat))
        if tool == "treesync":
            for rnd in sorted(cps):
                w("| cp -a | %d | – | %.3f s | 1× |" % (rnd, cps[rnd]))
    w("")
    runs = burst.get("treesync", {})
    okv = [runs[k][1] for k in sorted(runs) if runs[k][2] == n]
    rat = [runs[k][1] / cps[k] for k in sorted(runs) if runs[k][2] == n and k in cps]
    if okv and cps:
        w("Medians: treesync **%.3f s** (%d of %d runs complete), cp -a **%.3f s**; "
          "same-run ratio treesync / cp -a **%.2f×** (%s).\n" % (
              med(okv), len(okv), len(runs), med(cps.values()), med(rat) if rat else float("nan"),
              ", ".join("%.2f" % x for x in rat)))

# ---- setup
setup = {}
fails = []
for r in rows:
    if r[0] == "setup":
        tool, rnd, tree = r[1], int(r[2]), r[3]
        if r[11:] and r[11]:
            fails.append("%s run %d (%s tree): %s" % (tool, rnd, tree, r[11]))
            continue
        num = lambda x: int(x) if x not in ("", "None") else None
        setup.setdefault(tool, {}).setdefault(rnd, {})[tree] = dict(
            ready=float(r[4]), done=float(r[5]), rss=num(r[6]), rss2=num(r[7]), hwm=num(r[8]), watched=r[9], rc=r[10])
if setup or fails:
    nd = int(E["DIRS"])
    w("## Watch set-up on %s directories\n" % format(nd, ","))
    w("Time from the start of the process until its watches are in place "
      "(treesync: the timestamp of its \"watching N directories\" log line; lsyncd: "
      "when its \"recursive startup rsync\" line appeared (it adds every watch before "
      "it); inotifywait: when \"Watches established.\" appeared). RSS = VmRSS of "
      "the daemon process (treesyncd; lsyncd without its rsync child; the inotifywait "
      "process of the loop); bytes per directory = (RSS on the %s-directory tree − RSS on "
      "an empty tree, same run) / %s.\n" % (format(nd, ","), format(nd, ",")))
    w("| tool | watches in place (runs) | initial sync done | RSS at ready: empty → tree | bytes / dir at ready | RSS 1 s after initial sync: empty → tree | bytes / dir then |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for tool in ["treesync", "lsyncd", "inotifywait"]:
        runs = setup.get(tool, {})
        full = [runs[k] for k in sorted(runs) if "tree" in runs[k] and "empty" in runs[k]]
        if not full:
            continue
        rd = [x["tree"]["ready"] for x in full]
        dn = [x["tree"]["done"] for x in full]
        def per_dir(key):
            v = [(x["tree"][key] - x["empty"][key]) * 1024 / nd for x in full
                 if x["tree"][key] is not None and x["empty"][key] is not None]
            return v
        b1, b2 = per_dir("rss"), per_dir("rss2")
        rss = lambda key: ", ".join("%.1f → %.1f MiB" % (x["empty"][key] / 1024, x["tree"][key] / 1024)
                                    for x in full if x["tree"][key] is not None and x["empty"][key] is not None)
        w("| %s | **%.3f s** (%s) | %s | %s | **%s** | %s | %s |" % (
            tool, med(rd), ", ".join("%.3f" % v for v in rd),
            "–" if tool == "inotifywait" else "%.3f s (%s)" % (med(dn), ", ".join("%.3f" % v for v in dn)),
            rss("rss"), ("%.0f B" % med(b1)) if b1 else "–", rss("rss2"),
            ("%.0f B" % med(b2)) if b2 else "–"))
    w("")
    ws = sorted({x["tree"]["watched"] for k, x in setup.get("treesync", {}).items() if "tree" in x})
    if ws:
        w("treesync reported \"watching %s directories\" (the tree's %s plus its root).\n" % (
            " / ".join(ws), format(nd, ",")))
    for f in fails:
        w("- **failed:** %s" % f)
    if fails:
        w("")

# ---- phases
ph = {}
for l in open(E["PHASES"]):
    name, what, t, cpu, sysctls = l.rstrip("\n").split("\t")
    f = [int(x) for x in cpu.split()[1:]]
    ph.setdefault(name, {})[what] = (float(t), sum(f), f[3] + f[4], sysctls)   # total, idle + iowait
cells = []
for k, v in ph.items():
    if "start" in v and "end" in v:
        tot = v["end"][1] - v["start"][1]
        busy = 100.0 * (1 - (v["end"][2] - v["start"][2]) / tot) if tot else 0.0
        cells.append("%s %.0f s (all CPUs %.0f %% busy, this bench included)" % (k, v["end"][0] - v["start"][0], busy))
if cells:
    w("Phases: %s.\n" % "; ".join(cells))
    w("fs.inotify max_queued_events / max_user_watches / max_user_instances (shared: other jobs may "
      "change them) at the start and end of each phase: %s.\n" % "; ".join(
          "%s %s → %s" % (k, v["start"][3].replace(" ", " / "), v["end"][3].replace(" ", " / "))
          for k, v in ph.items() if "start" in v and "end" in v))

# ---- machine
sh = lambda *c: (subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines() or ["?"])[0]
w("## Machine\n")
w("- CPUs: %s (nproc), %s" % (sh("nproc"), E["cpu"] or "unknown model"))
w("- memory: %s" % E["mem"])
w("- OS: %s, kernel %s" % (E["os"], platform.release()))
w("- WORK: %s on %s (`stat -f -c %%T`; mounted as %s)" % (E["WORK"], E["FSTYPE"], E["MNT_FSTYPE"] or "?"))
w("- treesyncd: %s (%s); %s; %s; %s; %s; Python %s" % (
    E["TREESYNCD"], E["ts_version"] or "no --version output", E["lsyncd_version"], E["inw_version"],
    sh("rsync", "--version"), sh("cp", "--version"), platform.python_version()))
w("- binary: %s at the start; %s" % (E["BIN_START"], "unchanged at the end" if E["BIN_END"] == E["BIN_START"]
                                    else "**changed during the run**: %s at the end" % E["BIN_END"]))
w("- repository: HEAD %s, %s tracked file(s) modified in the working tree" % (E["GIT_HEAD"], E["GIT_DIRTY"]))
w("- inotify: max_queued_events %s; max_user_watches %s and max_user_instances %s before the run"
  % (E["MAX_QUEUED"], E["ORIG_MAX_WATCHES"], E["ORIG_MAX_INSTANCES"]))
for l in open(os.path.join(E["RUN_DIR"], "sysctl.log")):
    w("  - %s" % l.strip())
w("")
w("## Setup\n")
w("- SAMPLES=%s, ROUNDS=%s, DELAYS=\"%s\", POLL_US=%s, BURST=%s, BURST_DIRS=%s, BURST_RUNS=%s, "
  "BURST_OTHERS=%s, BURST_CAP=%s, DIRS=%s, SETUP_RUNS=%s, WORKERS=%s" % (
      E["SAMPLES"], E["ROUNDS"], E["DELAYS"], E["POLL_US"], E["BURST"], E["BURST_DIRS"], E["BURST_RUNS"],
      E["BURST_OTHERS"], E["BURST_CAP"], E["DIRS"], E["SETUP_RUNS"], E["WORKERS"]))
w("- latency: the five live mirrors (treesync delay_ms 0 / lsyncd / inotifywait loop / "
  "treesync delay_ms %s) run at the same time, each on its own fresh pair; blocks of "
  "SAMPLES/ROUNDS samples go to one mirror at a time, the order rotating by one each round. "
  "A sample: `os.open(O_CREAT|O_EXCL)`, write 4096 random bytes, close; then open+read+compare "
  "the destination every POLL_US (python `time.sleep`, so ~%d µs + a read) until equal; 5–10 ms "
  "pause between samples." % (" / ".join(E["DELAYS"].split()), int(E["POLL_US"])))
w("- burst: %s runs of treesync, each followed by `cp -a`; lsyncd and the inotifywait loop in "
  "the first %s run(s); the tools' order rotates from run to run. Each tool gets a fresh source "
  "and destination that already hold the %s empty directories (b00…); the writer (python, "
  "`os.open`/`write`/`close`, bytes generated beforehand) round-robins over them; then the "
  "destination is polled (`os.listdir` + `lstat` of the names not yet complete) every 10 ms, or "
  "twice as long as a poll took. Incomplete = no new file in DST for 20 s after the writer "
  "finished, the tool exited, or BURST_CAP = %s s." % (E["BURST_RUNS"], E["BURST_OTHERS"], E["BURST_DIRS"],
                                                      E["BURST_CAP"]))
w("- watch set-up: per run, per tool (rotating order): first the empty tree, then the "
  "%s-directory tree (`live_probe.py mktree`: 50 directories of 999 subdirectories for 50,000), "
  "each into a fresh destination; treesync with log_level = \"info\" (it writes one line per "
  "directory it creates during the initial sync). The process is stopped (SIGTERM) 1 s after "
  "its initial sync." % format(int(E["DIRS"]), ","))
w("- treesync latency and burst runs use log_level = \"warn\": %s log lines in total." % E["warn_lines"])
w("- every treesync destination was compared with its source by `treecmp.py --no-rsync` after the "
  "daemon was stopped:")
for line in open(E["VERIFY_LOG"]):
    w("  - %s" % line.strip())
w("")
w("## Commands\n")
w("```")
w("treesyncd -f -c CONF           (CONF: %s/*.conf)" % E["CONF_DIR"])
w("lsyncd CONF.lua                 (default.direct, delay = 0: see below)")
w("%s SRC DST ERRFILE   (the inotifywait loop, below)" % E["LOOP"])
w("cp -a SRC DST.cp                (burst baseline)")
w("python3 bench/live_probe.py latency|burst|setup ...   (the probes)")
w("```")
w("")
for name, title in (("lat.treesync.conf", "treesync, latency (delay_ms = 0)"),
                    ("lat.lsyncd.lua", "lsyncd, latency")):
    p = os.path.join(E["CONF_DIR"], name)
    if os.path.exists(p):
        w("%s:\n\n```\n%s\n```\n" % (title, open(p).read().rstrip()))
w("The inotifywait loop:\n\n```bash\n%s\n```\n" % open(E["LOOP"]).read().rstrip())
w("## Machine load during the run\n")
w("Other jobs share this machine; snapshots of the busiest processes (`top -b -n 2 -d 1`, the second iteration: CPU use over that second):\n")
w(open(os.path.join(E["RUN_DIR"], "load.md")).read().rstrip())
w("")
w("## Raw samples\n")
w("`bench/results/live-%s.samples.tsv` (a copy of `%s`)." % (E["STAMP"], E["TSV"]))
text = "\n".join(out) + "\n"
open(E["RESULTS"], "w").write(text)
print(text)
PY

echo "# results: $RESULTS"
cp "$TSV" "$RESULTS_DIR/live-$STAMP.samples.tsv"
echo "# raw samples: $RESULTS_DIR/live-$STAMP.samples.tsv"
if ((KEEP)); then
    echo "# KEEP=1: scratch kept in $RUN_DIR"
else
    echo "# removing $RUN_DIR"
    rm -rf "$RUN_DIR"
    touch "$DELETED_FILE"
    echo "# note: the next benchmark in $WORK waits until ${SETTLE}s after this delete"
fi
