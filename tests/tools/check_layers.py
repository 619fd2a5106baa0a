#!/usr/bin/env python3
"""The house rule of src/: a lower layer never includes a higher one.

Layers, lowest first: util, engine, dest, watch, live, service; the
programs (src/*.c) and src/remote/ may include any. A header without a
folder ("live-int.h") is a module's private header and must sit in the
including file's own folder. Exits 1 and names each offending line.
"""
import os
import re
import sys

LAYERS = ["util", "engine", "dest", "watch", "live", "service"]
TOP = "programs"
RANK = {name: i for i, name in enumerate(LAYERS + [TOP])}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel):
    """'src/live/queue.c' -> 'live'; 'src/main.c' -> programs."""
    parts = rel.split(os.sep)
    if len(parts) == 2:
        return TOP
    if parts[1] == "remote":
        return TOP
    return parts[1]


def check(root):
    problems = []
    for top in ("src", "include"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                mine = layer_of(rel)
                if mine not in RANK:
                    problems.append("%s: folder '%s' is not a layer" % (rel, mine))
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        if "/" not in inc:
                            if not os.path.exists(os.path.join(dirpath, inc)):
                                problems.append(
                                    '%s:%d: "%s" is not a private header of '
                                    "this folder" % (rel, n, inc))
                            continue
                        other = inc.split("/")[0]
                        if other == "remote":
                            other = TOP
                        if other not in RANK:
                            problems.append('%s:%d: "%s": no layer %s'
                                            % (rel, n, inc, other))
                        elif RANK[other] > RANK[mine]:
                            problems.append(
                                '%s:%d: %s includes "%s", a higher layer (%s)'
                                % (rel, n, mine, inc, other))
    return problems


def self_test():
    """The checker catches what it exists for (a checker that cannot fail
    proves nothing): an engine file including live, and a stray private
    header."""
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        for d in ("src/engine", "include/live"):
            os.makedirs(os.path.join(t, d))
        with open(os.path.join(t, "src/engine/a.c"), "w") as f:
            f.write('#include "util/x.h"\n#include "live/live.h"\n'
                    '#include "nope-int.h"\n')
        got = check(t)
        assert len(got) == 2, got
        assert "src/engine/a.c:2: engine includes \"live/live.h\"" in got[0], got
        assert "src/engine/a.c:3:" in got[1], got
    print("self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    print("layers: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
