#!/usr/bin/env bash
# The bash completions (completion/treesyncd, completion/treesyncctl),
# loaded into this shell and driven as bash drives them: COMP_WORDS and
# COMP_CWORD set, the function that `complete -p` names called, COMPREPLY
# compared with what it must hold. Sync names are checked from a config
# this test writes and from a daemon it starts (whose names differ from
# the file's by then), and, when bash-completion is installed, the scripts
# are found by its loader the way an installed copy is.
#
# Environment: TREESYNCD, TREESYNCCTL, TREESYNC_SOURCE_ROOT (meson sets
# them, see tests/meson.build).
set -u
top=${TREESYNC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
treesyncd=${TREESYNCD:-$top/build/treesyncd}
treesyncctl=${TREESYNCCTL:-$top/build/treesyncctl}
tmp=$(mktemp -d /tmp/treesync-completion.XXXXXX)
daemon=
failures=0
checks=0

cleanup() {
    if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon"
        wait "$daemon"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# comp WORD... : the completion of the last word, sorted, one per line.
comp() {
    local fn
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    fn=$(complete -p "$(basename "$1")" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
    "$fn" "$(basename "$1")" "${COMP_WORDS[COMP_CWORD]}" \
        "${COMP_WORDS[COMP_CWORD - 1]:-}"
    printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort
}

# expect "WHAT" "EXPECTED (one per line)" WORD...
expect() {
    local what=$1 want=$2 got
    shift 2
    got=$(comp "$@")
    checks=$((checks + 1))
    if [[ $got == "$want" ]]; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        echo "  words:    $*"
        echo "  expected: $(tr '\n' ' ' <<<"$want")"
        echo "  got:      $(tr '\n' ' ' <<<"$got")"
        failures=$((failures + 1))
    fi
}

source "$top/completion/treesyncd" || exit 1
source "$top/completion/treesyncctl" || exit 1

checks=$((checks + 1))
if [[ $(complete -p treesyncd) == "complete -F _treesyncd treesyncd" &&
      $(complete -p treesyncctl) == "complete -F _treesyncctl treesyncctl" ]]
then
    echo "ok: complete -p names both functions"
else
    echo "FAIL: complete -p: $(complete -p treesyncd treesyncctl 2>&1)"
    failures=$((failures + 1))
fi

# The config: two pairs, a remote with a name of its own, a pair that is
# only a comment, names written with '=' and ':'.
mkdir -p "$tmp/src/alpha" "$tmp/src/beta.2" "$tmp/dst"
conf=$tmp/t.conf
cat >"$conf" <<CONF
# name = "commented-out";
workers = 1; // name = "comment2"
log_file = "$tmp/log";
control_socket = "$tmp/c.sock";
/* syncs = ( { name = "block"; } ); */
remotes = ( { name = "web2"; host = "h"; } );
syncs = (
  { name = "alpha"; source = "$tmp/src/alpha";
    destinations = ( "$tmp/dst/alpha" ); exclude = ( "(x", "name" ); },
  { name : "beta.2"; source = "$tmp/src/beta.2";
    destinations = ( "$tmp/dst/beta" ); }
);
CONF

expect "treesyncd: long options from --help" \
    "--check-config
--config" "$treesyncd" --c
expect "treesyncd: --once" "--once" "$treesyncd" --on
expect "treesyncd: -c completes files" "$conf" "$treesyncd" -c "$tmp/t."
expect "treesyncctl: commands" \
    "metrics
pause
reload
resume
resync
status" "$treesyncctl" ""
expect "treesyncctl: commands by prefix" \
    "reload
resume
resync" "$treesyncctl" re
expect "treesyncctl: global options" \
    "--config
--help
--socket
--version" "$treesyncctl" --
expect "treesyncctl: status --json" "--json" "$treesyncctl" status --
expect "treesyncctl: resync --force" "--force" "$treesyncctl" -c "$conf" \
    resync --
# No daemon answers on $tmp/c.sock: the names come from the file.
expect "treesyncctl: resync NAME from the config" \
    "alpha
beta.2" "$treesyncctl" -c "$conf" resync ""
expect "treesyncctl: pause NAME by prefix" "beta.2" \
    "$treesyncctl" -c "$conf" pause b
expect "treesyncctl: resync --force NAME" "alpha" \
    "$treesyncctl" -c "$conf" resync --force a
expect "treesyncctl: one NAME only" "" "$treesyncctl" -c "$conf" pause \
    alpha ""
expect "treesyncctl: reload takes no NAME" "" "$treesyncctl" -c "$conf" \
    reload ""
expect "treesyncctl: -s completes files" "$conf" "$treesyncctl" -s \
    "$tmp/t."

# A running daemon: its pairs are the truth, not what the file says now.
# (Its own config: the one above, less the remote, which is only there to
# be left out.)
grep -v '^remotes' "$conf" >"$tmp/d.conf"
conf=$tmp/d.conf
"$treesyncd" -f -c "$conf" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 1 300); do
    "$treesyncctl" -s "$tmp/c.sock" status >/dev/null 2>&1 && break
    sleep 0.1
done
sed -i 's/"alpha"/"renamed"/; s/"beta.2"/"other"/' "$conf"
expect "treesyncctl: names from the running daemon (via -c's socket)" \
    "alpha
beta.2" "$treesyncctl" -c "$conf" resume ""
expect "treesyncctl: names from the running daemon (via -s)" \
    "alpha
beta.2" "$treesyncctl" -s "$tmp/c.sock" -c /nonexistent resume ""
expect "treesyncctl: no daemon on -s: the file's names" \
    "other
renamed" "$treesyncctl" -s "$tmp/none.sock" -c "$conf" resume ""
kill -TERM "$daemon"
wait "$daemon"
rc=$?
daemon=
checks=$((checks + 1))
if [[ $rc -eq 0 ]]; then
    echo "ok: the daemon exits 0 on SIGTERM"
else
    echo "FAIL: the daemon exited $rc on SIGTERM"
    failures=$((failures + 1))
fi

# bash-completion's loader finds the scripts where they are installed
# (here a user completions dir holding them).
bc=/usr/share/bash-completion/bash_completion
if [[ -r $bc ]]; then
    mkdir -p "$tmp/user/completions"
    cp "$top/completion/treesyncd" "$top/completion/treesyncctl" \
        "$tmp/user/completions/"
    complete -r treesyncd treesyncctl
    unset -f _treesyncd _treesyncctl
    BASH_COMPLETION_USER_DIR=$tmp/user
    source "$bc"
    _completion_loader treesyncctl
    _completion_loader treesyncd
    checks=$((checks + 1))
    if [[ $(complete -p treesyncctl) == *"-F _treesyncctl treesyncctl" &&
          $(complete -p treesyncd) == *"-F _treesyncd treesyncd" ]]; then
        echo "ok: bash-completion's loader picks them up"
    else
        echo "FAIL: after bash-completion's loader: $(complete -p \
            treesyncd treesyncctl 2>&1)"
        failures=$((failures + 1))
    fi
    expect "treesyncctl under bash-completion: names" \
        "other
renamed" "$treesyncctl" -c "$conf" resync ""
else
    echo "skipped: bash-completion is not installed"
fi

echo "$((checks - failures)) of $checks checks passed"
((failures == 0))
