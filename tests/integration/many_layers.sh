#!/bin/bash
# Many layers (mount-facts.md: overlayfs takes at most 500 lower layers, and
# a single lowerdir= string breaks at ~96 paths, where systemd 252 gives up):
#  - 150 extensions (directories and erofs images) merge, in version order;
#  - 498 extensions + the metadata layer + the base /usr = 500 layers merge;
#  - 499 extensions: the metadata layer and the base go in as one nested
#    overlay, so 499 images + 1 = 500 layers merge;
#  - 500 and 601 extensions: more than overlayfs stacks. The 499 that sort
#    last (the top layers) merge, the lowest ones are skipped by name with
#    the reason in status --json, and nothing is left behind on unmerge.
source "$(dirname "$0")/lib.sh"
require_root_env

B=$TEST_DIR/build
T=usr/share/rdext-test

# add_dir_ext ROOT DIR NAME: a minimal directory sysext, written directly
# (make_ext_tree is too slow for hundreds)
add_dir_ext() {
    local d=$1/$2/$3
    mkdir -p "$d/usr/lib/extension-release.d" "$d/$T"
    printf 'ID=debian\nVERSION_ID=12\n' >"$d/usr/lib/extension-release.d/extension-release.$3"
    echo "$3" >"$d/$T/top"
    echo "$3" >"$d/$T/$3"
}

check "150 extensions (100 directories, 50 erofs) merge in version order"
R=$TEST_DIR/root150
make_root "$R"
names=()
for i in $(seq 1 150); do
    n=layer-with-a-long-name-to-fill-the-option-string-$i
    names+=("$n")
    case $(( i % 3 )) in
        0) add_dir_ext "$R" etc/extensions "$n" ;;
        1) add_dir_ext "$B" erofs "$n"
           make_erofs "$B/erofs/$n" "$R/var/lib/extensions/$n.raw" ;;
        2) add_dir_ext "$R" var/lib/extensions "$n" ;;
    esac
done
# one contributes to /opt
mkdir -p "$R/etc/extensions/${names[2]}/opt/x" && echo opt >"$R/etc/extensions/${names[2]}/opt/x/f"
bind_root "$R"
snapshot_state "$R" before150
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${names[@]}"
assert_merged "$R" /opt "${names[@]}"
assert_file_content "$R/$T/top" "${names[149]}"
for i in 0 8 9 98 99 149; do assert_file_content "$R/$T/${names[$i]}" "${names[$i]}"; done
assert_file_content "$R/opt/x/f" opt
assert_no_staging "$R"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after150
assert_same_state before150 after150

check "498 extensions: 500 layers with metadata and base merge"
R=$TEST_DIR/root498
make_root "$R"
names=()
for i in $(seq 1 495); do
    names+=("x-$i")
    add_dir_ext "$R" var/lib/extensions "x-$i"
done
# three images, the only ones with /opt content (so /opt alone would fit),
# so that a failure has loop devices to clean up
for i in 1 2 3; do
    names+=("img-$i")
    add_dir_ext "$B" img "img-$i"
    mkdir -p "$B/img/img-$i/opt/img"
    echo "img-$i" >"$B/img/img-$i/opt/img/f"
    make_erofs "$B/img/img-$i" "$R/run/extensions/img-$i.raw"
done
(( ${#names[@]} == 498 )) || fail "test setup: ${#names[@]} extensions, wanted 498"
bind_root "$R"
snapshot_state "$R" before498
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${names[@]}"
assert_merged "$R" /opt "${names[@]}"
assert_file_content "$R/$T/top" x-495
assert_no_staging "$R"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after498
assert_same_state before498 after498

check "499 extensions: the metadata layer and the base nest as one layer, 500 layers merge"
add_dir_ext "$R" var/lib/extensions x-999
names+=("x-999")
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${names[@]}"
assert_file_content "$R/$T/top" x-999
for n in x-1 x-250 x-495 img-1 x-999; do assert_file_content "$R/$T/$n" "$n"; done
# the base's own files show through the nested bottom layer
[[ -e $R/usr/lib/os-release ]] || fail "base /usr/lib/os-release not visible through the merge"
assert_no_staging "$R"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after499
assert_same_state before498 after499

# expect_layer_skips ROOT SKIPPED...: the merge succeeded with 499 extensions
# in /usr; SKIPPED (the lowest-sorting ones) are reported skipped for the
# layer limit, on stderr and in status --json
expect_layer_skips() {
    local root=$1; shift
    expect_rc 0
    local n
    for n in "$@"; do expect_stderr_line "$n" 'layer|limit|500'; done
    cp "$TEST_DIR/last.err" "$TEST_DIR/merge.err"
    run_rdext --root="$root" --json status
    expect_rc 0
    n=$(json_query "$TEST_DIR/last.out" "sum(1 for e in d['extensions'] if e['result'] == 'merged')")
    [[ $n == 499 ]] || fail "status: $n extensions merged, wanted 499"
    n=$(json_query "$TEST_DIR/last.out" "sorted(e['name'] for e in d['extensions'] if e['result'] == 'skipped' and '500' in e.get('reason', ''))")
    local want
    want=$(python3 -c 'import json, sys; print(json.dumps(sorted(sys.argv[1:])))' "$@")
    [[ $n == "$want" ]] || fail "status: skipped for the layer limit: $n, wanted $want"
    [[ $(wc -l <"$root/usr/.systemd-sysext/extensions") == 499 ]] || fail "/usr metadata does not list 499 extensions"
    assert_no_staging "$root"
}

check "500 extensions: the 499 top ones merge, the lowest is skipped by name"
add_dir_ext "$R" var/lib/extensions x-9999
run_rdext --root="$R" merge
# sorted: img-1..3, x-1..x-495, x-999, x-9999: img-1 is the lowest
expect_layer_skips "$R" img-1
assert_file_content "$R/$T/top" x-9999
assert_absent "$R/$T/img-1"
assert_file_content "$R/opt/img/f" img-3
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after500
assert_same_state before498 after500

check "601 extensions: the 499 top ones merge, the 102 lowest are skipped by name"
for i in $(seq 1 101); do add_dir_ext "$R" var/lib/extensions "a-$i"; done
run_rdext --root="$R" merge
# a-1..a-101 sort first, then img-1
skipped=(img-1)
for i in $(seq 1 101); do skipped+=("a-$i"); done
expect_layer_skips "$R" "${skipped[@]}"
assert_file_content "$R/$T/top" x-9999
assert_file_content "$R/$T/img-2" img-2
assert_absent "$R/$T/a-101"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after601
assert_same_state before498 after601

finish
