#!/bin/bash
# The documentation says what the program does, and vice versa: every
# command, option and kernel command line switch in `rdext --help` is in
# rdext(8) and the other way round, the README's kernel command line
# reference lists exactly the switches of --help, the bash completion offers
# exactly the commands and options of --help, and the man page renders.
set -euo pipefail
RDEXT=${RDEXT:?}
src=$(cd "$(dirname "$0")/../.." && pwd)
man_page=$src/doc/rdext.8
completion=$src/completion/rdext.bash
fail=0
note() { printf 'docs_consistency: %s\n' "$*" >&2; }

help=$("$RDEXT" --help)
# troff source without escapes: "\-" -> "-", font switches dropped
man_text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man_page")

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

opt_re='--[a-z][a-z-]*'
switch_re='(rd\.)?(systemd\.)?(sysext|confext|rdext)[a-z_.]*='
compare "options" "--help" "$(words "$opt_re" <<<"$help")" "rdext(8)" "$(words "$opt_re" <<<"$man_text")"
compare "kernel switches" "--help" "$(words "$switch_re" <<<"$help")" "rdext(8)" \
    "$(words "$switch_re" <<<"$(sed -n '/^\.SH KERNEL COMMAND LINE/,/^\.SH /p' <<<"$man_text")")"

# The README's kernel command line reference lists exactly those switches.
readme_switches=$(sed -n '/^## Kernel command line reference/,/^## /p' "$src/README.md" | grep '^|' | cut -d'|' -f2)
compare "README kernel switches" "--help" "$(words "$switch_re" <<<"$help")" "README.md" \
    "$(words "$switch_re" <<<"$readme_switches")"

help_commands=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk 'NF && !/^Commands:/ {print $1}' | sort)
man_commands=$(sed -n '/^\.SH COMMANDS/,/^\.SH /p' <<<"$man_text" | awk '$1 == ".B" {print $2}' | sort)
compare "commands" "--help" "$help_commands" "rdext(8)" "$man_commands"

# The completion offers what --help lists.
complete_words() {
    bash -c 'source "$1"; COMP_WORDS=(rdext "$2"); COMP_CWORD=1; _rdext; printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$1" |
        sed 's/=$//' | sort -u
}
compare "completed commands" "--help" "$help_commands" "completion" "$(complete_words '')"
compare "completed options" "--help" "$(words "$opt_re" <<<"$help" | grep -vx -- '-h')" "completion" "$(complete_words --)"

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
