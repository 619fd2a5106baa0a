#!/usr/bin/env bash
# Builds treesync and runs every test: the unit suites and the integration
# suites, first in a normal build (with the install checks and, in a
# container booted by systemd-nspawn, the systemd test: suite 'system';
# the first run debootstraps a Debian 12 root into /var/cache/treesync-test,
# about 3 min, later runs reuse it), then in an ASan+UBSan build; the unit
# suites and the live integration suite in a TSan build; the unit suites
# and a small integration run under valgrind memcheck; each libFuzzer
# target for FUZZ_SECONDS (default 20) in a clang build. docs/design.md
# "Testing" says why each build runs what.
# Installs missing Debian packages first. Run as root: the tests mount
# tmpfs file systems and add a temporary unprivileged user (both undone).
#
#   ./scripts/test.sh            everything
#   QUICK=1 ./scripts/test.sh    the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

"$top/scripts/deps.sh"

# Tests lower fs.inotify limits and restore them themselves; a test killed
# by a timeout cannot, so the values at the start are put back at the end
# whatever happens.
inotify_saved=$(sysctl -n fs.inotify.max_user_watches \
  fs.inotify.max_queued_events fs.inotify.max_user_instances | tr '\n' ' ')
restore_sysctls() {
  set -- $inotify_saved
  [ "$(id -u)" -eq 0 ] || return 0
  sysctl -q -w fs.inotify.max_user_watches="$1" \
    fs.inotify.max_queued_events="$2" fs.inotify.max_user_instances="$3" ||
    true
}
trap restore_sysctls EXIT

results=()
logs=$(mktemp -d /tmp/treesync-testlogs.XXXXXX)

# The systemd test's Debian root is built while the first suites run (on
# a fresh machine debootstrap takes about 3 min of mostly network and disk
# time; with the cache in place this returns at once). The test itself
# waits on the cache's lock.
if [ "$(id -u)" -eq 0 ]; then
  python3 tests/system/rootfs.py >"$logs/rootfs.out" 2>&1 &
  rootfs_pid=$!
fi
run_suite() {  # name builddir [meson test args...]
  local name=$1 dir=$2
  shift 2
  echo "=== $name"
  local rc=0 start=$SECONDS
  meson test -C "$dir" --print-errorlogs --num-processes 1 "$@" || rc=$?
  echo "=== $name: $((SECONDS - start)) s"
  # meson names the log after the wrapper (testlog-valgrind.json): newest.
  cp "$(ls -t "$dir"/meson-logs/testlog*.json | head -n 1)" \
    "$logs/${#results[@]}.json" 2>/dev/null || true
  results+=("$logs/${#results[@]}.json")
  return $rc
}

status=0
# prefix /usr: the install test then checks the layout Debian expects.
meson setup build --prefix=/usr --reconfigure >/dev/null 2>&1 ||
  meson setup build --prefix=/usr >/dev/null
meson compile -C build
run_suite "normal build" build || status=1

# Sanitizer reports go to files (the daemon's stderr is often /dev/null in
# the integration tests); any that were written are shown at the end.
show_reports() {  # prefix
  local f
  for f in "$1".*; do
    [ -e "$f" ] || continue
    echo "--- sanitizer report $f" >&2
    head -c 20000 "$f" >&2
  done
}

if [ -z "${QUICK:-}" ]; then
  # Sanitizers: a failure exits with its own code, so no test mistakes it
  # for the daemon's exit 1. UBSan builds also abort on their own
  # (-fno-sanitize-recover, meson.build).
  export ASAN_OPTIONS=exitcode=86:detect_leaks=1:abort_on_error=0:log_path=$logs/asan
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$logs/ubsan
  meson setup build-asan -Db_sanitize=address,undefined --reconfigure >/dev/null 2>&1 ||
    meson setup build-asan -Db_sanitize=address,undefined >/dev/null
  meson compile -C build-asan
  # The churn runs its 3 seeds for 20 s each in the normal build; here 5 s.
  # The planner's model test (test-model) likewise: 5 s of sequences.
  TREESYNC_CHURN_SECONDS=5 TREESYNC_MODEL_SECONDS=5 \
    run_suite "ASan+UBSan build" build-asan \
    --no-suite tools || status=1
  unset ASAN_OPTIONS UBSAN_OPTIONS
  show_reports "$logs/asan"
  show_reports "$logs/ubsan"

  # TSan: the threaded parts (reactor + worker pool, watcher thread, the
  # log writer in test-synclog). The
  # unit suites, then the live daemon on a shorter churn. Suppressions
  # (outside our code only) are explained in tests/tsan.supp.
  export TSAN_OPTIONS="halt_on_error=1:exitcode=89:second_deadlock_stack=1:suppressions=$top/tests/tsan.supp:log_path=$logs/tsan"
  meson setup build-tsan -Db_sanitize=thread --reconfigure >/dev/null 2>&1 ||
    meson setup build-tsan -Db_sanitize=thread >/dev/null
  meson compile -C build-tsan
  TREESYNC_MODEL_SECONDS=5 run_suite "TSan: unit" build-tsan --suite unit \
    --timeout-multiplier 3 ||
    status=1
  TREESYNC_CHURN_SECONDS=5 run_suite "TSan: live" build-tsan live \
    --timeout-multiplier 2 || status=1
  unset TSAN_OPTIONS
  show_reports "$logs/tsan"

  # libFuzzer: each target fuzzed for a bounded time from its corpus in
  # tests/fuzz/corpus; a crash, a broken invariant or a leak fails it.
  # It only needs CPU (no mounts, sysctls or users), so it runs beside the
  # valgrind stage, which mostly waits; its output is shown after it.
  (
    CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
      -Db_sanitize=address,undefined -Db_lundef=false --reconfigure \
      >/dev/null 2>&1 ||
      CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
    meson compile -C build-fuzz >/dev/null
    start=$SECONDS
    echo "=== libFuzzer"
    rc=0
    FUZZ_SECONDS=${FUZZ_SECONDS:-20} meson test -C build-fuzz \
      --print-errorlogs --num-processes 1 --suite fuzz || rc=$?
    echo "=== libFuzzer: $((SECONDS - start)) s (beside valgrind)"
    exit $rc
  ) >"$logs/fuzz.out" 2>&1 &
  fuzz_pid=$!

  # valgrind: the unit suites, and the daemon in the integration suite
  # on a smaller tree (TREESYNC_WRAP runs every treesyncd under it). Each
  # test stops the daemon with SIGTERM and checks its exit code, which is
  # 88 on any memcheck error or leak at exit.
  vg="valgrind -q --error-exitcode=88 --leak-check=full --errors-for-leak-kinds=definite,indirect"
  CK_FORK=no TREESYNC_MODEL_SECONDS=5 run_suite "valgrind: unit" build \
    --suite unit --wrap "$vg" \
    --timeout-multiplier 5 || status=1
  TREESYNC_WRAP="$vg" TREESYNC_TEST_BIG_FILES=3000 TREESYNC_CHURN_SECONDS=5 \
    run_suite "valgrind: integration" build --suite integration \
    --timeout-multiplier 3 || status=1

  wait "$fuzz_pid" || status=1
  cat "$logs/fuzz.out"
  cp build-fuzz/meson-logs/testlog.json "$logs/${#results[@]}.json" \
    2>/dev/null || true
  results+=("$logs/${#results[@]}.json")
fi

[ -z "${rootfs_pid:-}" ] || wait "$rootfs_pid" || true

# One closing line that CI reads: every check test and every unittest
# case over all the runs above (a program that printed no count of its own
# counts as one test).
python3 - "${results[@]}" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line)
        out = (r.get("stdout") or "") + (r.get("stderr") or "")
        ok = r["result"] in ("OK", "EXPECTEDFAIL")
        m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
        u = re.search(r"^Ran (\d+) tests?", out, re.M)
        if m:
            n, f, e = map(int, m.groups())
            passed += n - f - e
            failed += f + e + (0 if ok or f + e else 1)
        elif u:
            n = int(u.group(1))
            s = re.search(r"skipped=(\d+)", out)
            f = sum(map(int, re.findall(r"(?:failures|errors)=(\d+)", out)))
            sk = int(s.group(1)) if s else 0
            skipped += sk
            passed += n - f - sk
            failed += f + (0 if ok or f else 1)
        elif r["result"] == "SKIP":
            skipped += 1
        elif ok:
            passed += 1
        else:
            failed += 1
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY
rm -rf "$logs"
exit $status
