#!/bin/bash
# The README's quick start works exactly as written: its first ```sh block
# under "## Quick start" is run with the built rdext first on PATH, in a
# scratch directory, and must show the merge and leave nothing behind.
set -euo pipefail
RDEXT=$(realpath "${RDEXT:?}")
src=$(cd "$(dirname "$0")/../.." && pwd)
note() { printf 'readme_quickstart: %s\n' "$*" >&2; }
if [[ $(id -u) != 0 ]] || ! unshare -m true 2>/dev/null; then
    [[ ${CI:-} == true ]] && { note "FAIL (CI=true, cannot skip): needs root and unshare -m"; exit 1; }
    echo "SKIP: needs root and unshare -m"; exit 77
fi
script=$(awk '/^## Quick start/ {on = 1} on && /^```sh/ {c = 1; next} c && /^```/ {exit} c' "$src/README.md")
[[ -n $script ]] || { note "no sh block under ## Quick start"; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
out=$(cd "$work" && TMPDIR=$work PATH=$(dirname "$RDEXT"):$PATH bash -euo pipefail -c "$script" 2>&1) ||
    { printf '%s\n' "$out" >&2; note "FAIL: the quick start exits non-zero"; exit 1; }
printf '%s\n' "$out" >&2
fail=0
grep -qE '^/usr +sysext +hello$' <<<"$out" || { note "FAIL: status does not show /usr merged with hello"; fail=1; }
grep -qx 'hello from an extension' <<<"$out" || { note "FAIL: the extension's file was not seen"; fail=1; }
grep -q 'unmerged sysext from /usr' <<<"$out" || { note "FAIL: no unmerge"; fail=1; }
[[ -z $(ls -A "$work") ]] || { note "FAIL: the quick start leaves $(ls -A "$work")"; fail=1; }
[[ $fail == 0 ]] && note PASS
exit "$fail"
