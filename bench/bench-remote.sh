#!/bin/bash
# bench-remote.sh -- remote destinations: treesync vs lsyncd
# (default.rsyncssh, delay = 0) vs a plain `rsync -a`, in one run, over the
# same ssh to a host in a network namespace this run makes.
#
#   sudo bench/bench-remote.sh [--quick]
#
# Prints a Markdown table (latency of a 4 KiB write p50/p99, a 10,000-file
# burst against one rsync -a of it, bytes on the wire for a rename of a
# 1 GiB file and of a 1,000-file directory). Needs a build in build/ (or
# BUILD=dir), root, and installs lsyncd when it is missing. See
# bench/bench_remote.py for what exactly runs; results in
# docs/performance.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB," \
    "$(uname -r), $(ssh -V 2>&1), $(rsync --version | head -1)," \
    "lsyncd $(lsyncd --version 2>/dev/null | awk '/Version/ {print $2}')"
exec nice -n 10 python3 "$here/bench_remote.py" "$@"
