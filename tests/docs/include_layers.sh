#!/bin/bash
# Includes point down only: every `#include "dir/..."` in src/ names its own
# directory or one on a lower layer of the table in src/README.md, so the
# table and the code cannot disagree. Checks a made-up upward include first,
# so a checker that matches nothing cannot pass.
set -euo pipefail
src=$(cd "$(dirname "$0")/../../src" && pwd)
note() { printf 'include_layers: %s\n' "$*" >&2; }

# check SRC_DIR: prints one line per include that breaks the table; exit 1 then.
check() {
    local dir=$1 bad=0 n=0 file from to hdr lf lt line
    declare -A layer=()
    # Table rows: "| 3 | `image` `state` | ...".
    while IFS='|' read -r _ num dirs _; do
        num=${num// /}
        [[ $num =~ ^[0-9]+$ ]] || continue
        for d in $(grep -oE '`[^`]+`' <<<"$dirs" | tr -d '`'); do layer[$d]=$num; done
    done < "$dir/README.md"
    ((${#layer[@]})) || { note "no layer table in $dir/README.md"; return 1; }
    for d in "$dir"/*/; do
        d=$(basename "$d")
        [[ -v layer[$d] ]] || { echo "src/$d/: directory not in the layer table of src/README.md"; bad=1; }
    done
    while IFS=: read -r file line to; do
        from=${file#"$dir"/}; from=${from%%/*}
        hdr=${to#*\"}; hdr=${hdr%\"}; to=${hdr%%/*}
        n=$((n + 1))
        [[ $from == "$to" ]] && continue
        lf=${layer[$from]:-?} lt=${layer[$to]:-?}
        if [[ $lf == "?" || $lt == "?" ]]; then
            echo "src/${file#"$dir"/}:$line: $from includes $hdr, whose directory is not in the layer table"; bad=1
        elif ((lt >= lf)); then
            echo "src/${file#"$dir"/}:$line: $from (layer $lf) includes $hdr (layer $lt): not a lower layer"; bad=1
        fi
    done < <(grep -rnoE --include='*.cc' --include='*.h' '^#include "[A-Za-z0-9_]+/[^"]*"' "$dir")
    ((n)) || { note "no include found under $dir"; return 1; }
    return $bad
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/base" "$tmp/merge"
cp "$src/README.md" "$tmp/"
printf '#include "merge/merge.h"\n' > "$tmp/base/fs.h"
printf '#include "base/fs.h"\n' > "$tmp/merge/merge.h"
if out=$(check "$tmp"); then note "the checker let an upward include (base -> merge) pass"; exit 1; fi
grep -q 'base/fs.h:1: base (layer 1) includes merge/merge.h (layer 6)' <<<"$out" || { note "self-check said: $out"; exit 1; }

if out=$(check "$src"); then
    note "every include in src/ points down ($(grep -rcE '^#include "[A-Za-z0-9_]+/' "$src" --include='*.cc' --include='*.h' | awk -F: '{s+=$2} END {print s}') checked)"
else
    printf '%s\n' "$out" >&2
    note "includes that point upward or sideways: fix them or the table in src/README.md"
    exit 1
fi
