#!/usr/bin/env bash
# Builds treesync and runs every test: the unit suites and the integration
# suites, first in a normal build (with the install checks and, in a
# container booted by systemd-nspawn, the systemd test: suite 'system';
# the first run debootstraps a Debian 12 root into /var/cache/treesync-test,
# about 3 min, later runs reuse it), then in an ASan+UBSan build, then the
# unit suites and a small integration run under valgrind memcheck.
# Installs missing Debian packages first. Run as root: the tests mount
# tmpfs file systems and add a temporary unprivileged user (both undone).
#
#   ./scripts/test.sh            everything
#   QUICK=1 ./scripts/test.sh    the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

"$top/scripts/deps.sh"

results=()
logs=$(mktemp -d /tmp/treesync-testlogs.XXXXXX)
run_suite() {  # name builddir [meson test args...]
  local name=$1 dir=$2
  shift 2
  echo "=== $name"
  local rc=0
  meson test -C "$dir" --print-errorlogs --num-processes 1 "$@" || rc=$?
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

if [ -z "${QUICK:-}" ]; then
  # Sanitizers: a failure exits with its own code, so no test mistakes it
  # for the daemon's exit 1.
  export ASAN_OPTIONS=exitcode=86:detect_leaks=1:abort_on_error=0
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
  meson setup build-asan -Db_sanitize=address,undefined --reconfigure >/dev/null 2>&1 ||
    meson setup build-asan -Db_sanitize=address,undefined >/dev/null
  meson compile -C build-asan
  run_suite "ASan+UBSan build" build-asan || status=1
  unset ASAN_OPTIONS UBSAN_OPTIONS

  # valgrind: the unit suites, and the daemon in the integration suite
  # on a smaller tree (TREESYNC_WRAP runs every treesyncd under it).
  vg="valgrind -q --error-exitcode=88 --leak-check=full --errors-for-leak-kinds=definite"
  CK_FORK=no run_suite "valgrind: unit" build --suite unit --wrap "$vg" \
    --timeout-multiplier 5 || status=1
  TREESYNC_WRAP="$vg" TREESYNC_TEST_BIG_FILES=3000 TREESYNC_CHURN_SECONDS=5 \
    run_suite "valgrind: integration" build --suite integration \
    --timeout-multiplier 3 || status=1
fi

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
