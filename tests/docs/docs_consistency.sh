#!/bin/bash
# The documentation says what the program does, and vice versa. The lists of
# commands, options and kernel command line switches come from the program
# itself (its option and command tables, its kernel command line key table,
# and `rdext --help`); rdext(8), the README and the bash completion must
# name exactly those, each in its reference place:
#   commands: --help "Commands:", rdext(8) COMMANDS, README "## Usage" table,
#             completion of the first word;
#   options:  --help, rdext(8) OPTIONS, README "## Usage" synopsis,
#             completion of "--";
#   switches: --help "Kernel command line:", rdext(8) KERNEL COMMAND LINE,
#             README "## Kernel command line" table (each switch once).
# Options anywhere in rdext(8) (but in example lines of other tools: systemctl ...),
# and in the README's `rdext ...` examples,
# must be rdext's. Links and repository paths in the Markdown docs exist.
# The man page renders; the boot path's units have a start timeout.
set -euo pipefail
RDEXT=${RDEXT:?}
src=$(cd "$(dirname "$0")/../.." && pwd)
man_page=$src/doc/rdext.8
completion=$src/completion/rdext.bash
readme=$src/README.md
fail=0
note() { printf 'docs_consistency: %s\n' "$*" >&2; }

help=$("$RDEXT" --help)
# troff source without escapes: "\-" -> "-", font switches dropped
man_text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man_page")
man_section() { sed -n "/^\\.SH $1/,/^\\.SH /p" <<<"$man_text"; }
# A Markdown section: from its "## TITLE..." heading to the next "## ".
md_section() { awk -v t="## $1" 'index($0, t) == 1 {on = 1; print; next} on && /^## / {exit} on' "$readme"; }

words() { grep -oE -e "$1" | sed -E 's/[=,.]+$//' | sort -u; }
compare() {  # compare WHAT LEFT-NAME LEFT RIGHT-NAME RIGHT
    local d
    d=$(diff <(printf '%s\n' "$3") <(printf '%s\n' "$5") || true)
    if [[ -n $d ]]; then
        note "$1 differ between $2 (<) and $4 (>):"
        printf '%s\n' "$d" | grep -E '^[<>]' >&2
        fail=1
    else
        note "$1 agree: $(printf '%s\n' "$3" | tr '\n' ' ')"
    fi
}
subset() {  # subset WHAT SET-NAME SET ALL-NAME ALL: every word of SET is in ALL
    local extra
    extra=$(comm -23 <(printf '%s\n' "$3" | sort -u) <(printf '%s\n' "$5" | sort -u) | grep . || true)
    if [[ -n $extra ]]; then
        note "$1 in $2 that $4 does not know:" $extra; fail=1
    else
        note "$1 in $2 are all in $4"
    fi
}

opt_re='--[a-z][a-z-]*'
switch_re='(rd\.)?(systemd\.)?(sysext|confext|rdext)[a-z_.]*='

# What the program knows, from its source tables: getopt's long options,
# the command table, the kernel command line key table.
parser_options=$(grep -oE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' "$src/src/cli/options.cc" |
    sed -E 's/^\{"([^"]*)".*/--\1/' | sort -u)
parser_commands=$(grep -oE '\{"[a-z][a-z-]*", *Command::' "$src/src/cli/options.cc" |
    sed -E 's/^\{"([^"]*)".*/\1/' | sort -u)
parser_switches=$(sed -n '/kOptions\[\] *=/,/^};/p' "$src/src/cmdline/cmdline.cc" |
    grep -oE '\{"[a-z][a-z._]*",' | sed -E 's/^\{"([^"]*)",/\1/' | sort -u)
for v in parser_options parser_commands parser_switches; do
    [[ -n ${!v} ]] || { note "could not read $v from the source"; exit 1; }
done

help_options=$(words "$opt_re" <<<"$help")
help_commands=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk 'NF && !/^Commands:/ {print $1}' | sort -u)
help_switches=$(sed -n '/^Kernel command line:/,/^$/p' <<<"$help" | words "$switch_re")

# --help against the program
compare "options" "the parser" "$parser_options" "--help" "$help_options"
compare "commands" "the parser" "$parser_commands" "--help" "$help_commands"
compare "kernel switches" "the parser" "$parser_switches" "--help" "$help_switches"

# rdext(8)
compare "options" "the parser" "$parser_options" "rdext(8) OPTIONS" "$(man_section OPTIONS | words "$opt_re")"
subset "options" "rdext(8)" "$(grep -vE "^(systemctl|varlinkctl|journalctl) " <<<"$man_text" | words "$opt_re")" "the parser" "$parser_options"
compare "commands" "the parser" "$parser_commands" "rdext(8) COMMANDS" \
    "$(man_section COMMANDS | awk '$1 == ".B" {print $2}' | sort -u)"
compare "kernel switches" "the parser" "$parser_switches" "rdext(8) KERNEL COMMAND LINE" \
    "$(man_section 'KERNEL COMMAND LINE' | words "$switch_re")"

# README: the synopsis (the first code block of "## Usage"), its command
# table, its kernel command line reference, and every `rdext ...` example.
usage=$(md_section Usage)
synopsis=$(awk '/^```/ {if (on) exit; on = 1; next} on' <<<"$usage")
compare "options" "the parser" "$parser_options" "README synopsis" "$(words "$opt_re" <<<"$synopsis")"
first_table() { awk '/^\|/ {on = 1; print; next} on {exit}'; }
compare "commands" "the parser" "$parser_commands" "README command table" \
    "$(first_table <<<"$usage" | grep -E '^\| *`' | sed -E 's/^\| *`([a-z-]+).*/\1/' | sort -u)"
readme_switch_cells=$(md_section 'Kernel command line' | grep -E '^\| *`' | cut -d'|' -f2)
compare "kernel switches" "the parser" "$parser_switches" "README kernel command line" \
    "$(words "$switch_re" <<<"$readme_switch_cells")"
# Each switch is described once: one row of that table, no table elsewhere.
twice=$(grep -oE "$switch_re" <<<"$readme_switch_cells" | sort | uniq -d)
[[ -z $twice ]] || { note "README kernel command line lists twice:" $twice; fail=1; }
elsewhere=$(awk 'index($0, "## Kernel command line") == 1 {skip = 1; next} /^## / {skip = 0} !skip' "$readme" |
    grep -E '^\| *`' | cut -d'|' -f2 | grep -oE "$switch_re" | sort -u || true)
[[ -z $elsewhere ]] || { note "README describes in a table outside its kernel command line reference:" $elsewhere; fail=1; }
readme_examples=$(grep -E '^ *(sudo )?rdext( |$)' "$readme" || true)
subset "options" "README's rdext examples" "$(words "$opt_re" <<<"$readme_examples")" "the parser" "$parser_options"

# The completion offers what the program takes.
complete_words() {
    bash -c 'source "$1"; COMP_WORDS=(rdext "$2"); COMP_CWORD=1; _rdext; printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$1" |
        sed -E 's/=$//; s/\[=.*//' | sort -u
}
compare "commands" "the parser" "$parser_commands" "completion" "$(complete_words '')"
compare "options" "the parser" "$parser_options" "completion" "$(complete_words --)"

# Links and repository paths in the Markdown docs lead somewhere: relative
# links to files, "#anchors" to headings of the same file, and `paths` in
# backquotes that start with a top-level directory of the tree.
slug() { tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'; }
check_markdown() {
    local md=$1 dir anchors target bad=0
    dir=$(dirname "$md")
    anchors=$(grep -E '^#+ ' "$md" | sed -E 's/^#+ +//' | slug)
    while read -r target; do
        [[ -z $target || $target == http* || $target == mailto:* ]] && continue
        if [[ $target == '#'* ]]; then
            grep -qxF -- "${target#\#}" <<<"$anchors" || { note "${md#"$src"/}: no heading for link $target"; bad=1; }
        elif [[ ! -e $dir/${target%%#*} ]]; then
            note "${md#"$src"/}: link to missing $target"; bad=1
        fi
    done < <(grep -oE '\]\([^)]*\)' "$md" | sed -E 's/^\]\((.*)\)$/\1/')
    while read -r target; do
        [[ $target == *[\<\*\{\$]* ]] && continue
        [[ -e $src/${target%/} ]] || { note "${md#"$src"/}: names missing path $target"; bad=1; }
    done < <(grep -oE '`(scripts|tests|initrd|units|doc|dracut-module|completion|src|\.ci)/[^` ]*`|`mkosi\.[a-z]+/?`' "$md" |
        tr -d '`' | sort -u)
    [[ $bad == 0 ]] && note "${md#"$src"/}: links and paths exist"
    return "$bad"
}
for md in "$readme" "$src"/doc/*.md "$src"/tests/bench/README.md; do
    [[ -e $md ]] || continue
    check_markdown "$md" || fail=1
done

# The units on the boot path are bounded: a oneshot unit has no start
# timeout unless it sets one, and a hung rdext would hang the boot for ever.
for unit in initrd/rdext-merge.service units/rdext-count-tries.service; do
    t=$(sed -n 's/^TimeoutStartSec=//p' "$src/$unit")
    if [[ -z $t || $t == infinity ]] || ! us=$(systemd-analyze timespan "$t" 2>/dev/null | sed -n 's/^ *μs: *//p') ||
        [[ -z $us || $us == 0 ]]; then
        note "$unit: no finite TimeoutStartSec= (got '${t}')"; fail=1
    else
        note "$unit: TimeoutStartSec=$t"
    fi
done

if ! out=$(MANWIDTH=80 man -l "$man_page" 2>&1 >/dev/null); then
    note "man -l $man_page failed: $out"; fail=1
elif [[ -n $out ]]; then
    note "man -l $man_page warns: $out"; fail=1
else
    note "rdext(8) renders"
fi
[[ $fail == 0 ]] && note PASS
exit "$fail"
