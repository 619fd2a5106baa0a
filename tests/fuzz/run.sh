#!/bin/sh
# Runs one libFuzzer target for a bounded time: run.sh TARGET SEEDS ARTIFACTS
# Starts from the seed corpus SEEDS (read only: new inputs go to a scratch
# directory), stops after FUZZ_SECONDS (default 30). libFuzzer exits non-zero
# on a crash, a sanitizer report, a leak, a slow input (-timeout) or memory
# past -rss_limit_mb; the input that did it is kept in ARTIFACTS with the
# command that replays it.
set -eu
target=$1 seeds=$2 artifacts=$3
seconds=${FUZZ_SECONDS:-30}
work=$(mktemp -d /tmp/treesync-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
name=$(basename "$target")
# Leaks inside libraries we cannot fix (each explained in lsan.supp). An
# absolute path: fuzz-config changes its working directory.
here=$(cd "$(dirname "$0")" && pwd)
LSAN_OPTIONS=suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}
export LSAN_OPTIONS
rc=0
# libFuzzer's default exit code for a finding is 77, which meson reads as
# "skipped": make every finding a plain failure.
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$name-" "$work" "$seeds" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "$name: FAILED (exit $rc); reproduce with:" >&2
  echo "  $target $artifacts/$name-<crash-file>" >&2
fi
exit $rc
