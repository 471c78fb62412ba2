#!/bin/bash
# Many layers (mount-facts.md: overlayfs takes at most 500 lower layers, and
# a single lowerdir= string breaks at ~96 paths, where systemd 252 gives up):
#  - 150 extensions (directories and erofs images) merge, in version order;
#  - 498 extensions + the metadata layer + the base /usr = 500 layers merge;
#  - 499 extensions: the metadata layer and the base go in as one nested
#    overlay, so 499 images + 1 = 500 layers merge;
#  - 500 extensions fail with a message and leave nothing behind (no /opt
#    overlay either, no staging, no loop device), i.e. the merge is atomic.
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

check "500 extensions: too many layers for /usr, the merge fails and leaves nothing"
add_dir_ext "$R" var/lib/extensions x-9999
run_rdext --root="$R" merge
expect_rc 1
expect_stderr_line 'usr' 'layer|limit|too many|500'
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
assert_not_merged "$R" /etc
snapshot_state "$R" failed500
assert_same_state before498 failed500
assert_no_staging "$R"

finish
