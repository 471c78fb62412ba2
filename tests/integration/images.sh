# shellcheck shell=bash
# Builders of test roots and extension images, shared by the integration
# tests (through lib.sh) and the demo (scripts/demo.sh). They need $TEST_DIR
# (scratch space) and a `fail` function from the caller.

# x86-64 partition types from the Discoverable Partitions Specification.
GPT_ROOT_X86_64=4f68bce3-e8cd-4db1-96e7-fbcaf984b709
GPT_USR_X86_64=8484680c-9521-48c6-9c11-b0720656f69e

SYSEXT_DIRS=(etc/extensions run/extensions var/lib/extensions)
CONFEXT_DIRS=(run/confexts var/lib/confexts usr/local/lib/confexts usr/lib/confexts)


# make_root DIR [os-release lines...]: a minimal target root. Without lines
# the root says ID=debian VERSION_ID=12.
make_root() {
    local root=$1; shift
    local lines=("$@")
    (( ${#lines[@]} )) || lines=(ID=debian VERSION_ID=12)
    mkdir -p "$root"/{usr/bin,usr/lib,usr/share,opt,etc,var/lib,run}
    local d
    for d in "${SYSEXT_DIRS[@]}" "${CONFEXT_DIRS[@]}"; do mkdir -p "$root/$d"; done
    printf '%s\n' "${lines[@]}" >"$root/usr/lib/os-release"
    ln -sfn ../usr/lib/os-release "$root/etc/os-release"
    echo base >"$root/usr/bin/base-tool"
    echo base >"$root/usr/share/base-file"
    echo base >"$root/opt/base-file"
    echo base >"$root/etc/base.conf"
}

# make_ext_tree DIR NAME CLASS [RELEASE-LINE...] [-- PATH=CONTENT...]
# A directory tree for extension NAME of CLASS (sysext|confext) with its
# release file and the given files. Release lines default to the root's
# (ID=debian VERSION_ID=12); "@none" writes no release file, "@empty" an
# empty one. PATH is relative to the tree (usr/bin/x, opt/y, etc/z).
make_ext_tree() {
    local dir=$1 name=$2 class=$3; shift 3
    local release=() files=() seen_sep=0 arg
    for arg in "$@"; do
        if [[ $seen_sep == 0 && $arg == -- ]]; then seen_sep=1; continue; fi
        if [[ $seen_sep == 0 ]]; then release+=("$arg"); else files+=("$arg"); fi
    done
    (( ${#release[@]} )) || release=(ID=debian VERSION_ID=12)
    mkdir -p "$dir"
    local reldir
    case $class in
        sysext) reldir=$dir/usr/lib/extension-release.d ;;
        confext) reldir=$dir/etc/extension-release.d ;;
        *) fail "make_ext_tree: unknown class $class" ;;
    esac
    case ${release[0]} in
        @none) ;;
        @empty) mkdir -p "$reldir"; : >"$reldir/extension-release.$name" ;;
        *) mkdir -p "$reldir"; printf '%s\n' "${release[@]}" >"$reldir/extension-release.$name" ;;
    esac
    local f path content
    for f in "${files[@]}"; do
        path=${f%%=*}
        content=${f#*=}
        mkdir -p "$(dirname "$dir/$path")"
        printf '%s\n' "$content" >"$dir/$path"
    done
}

make_erofs() {
    local src=$1 out=$2
    mkfs.erofs -q "$out" "$src" >/dev/null 2>&1 || mkfs.erofs "$out" "$src" >/dev/null
}

make_squashfs() {
    local src=$1 out=$2
    mksquashfs "$src" "$out" -quiet -noappend -all-root >/dev/null
}

make_ext4() {
    local src=$1 out=$2 kib
    kib=$(du -sk "$src" | cut -f1)
    kib=$(( kib * 2 + 4096 ))
    rm -f "$out"
    mkfs.ext4 -q -F -E root_owner=0:0 -d "$src" "$out" "${kib}k" >/dev/null
}

# make_gpt SRC OUT root|usr [erofs|ext4|squashfs]: a DDI with one partition of
# the x86-64 root (whole tree) or usr (SRC/usr as its top) type.
make_gpt() {
    local src=$1 out=$2 kind=$3 fs=${4:-erofs}
    local fsimg type fs_src=$src
    fsimg=$(mktemp -p "$TEST_DIR" gptfs.XXXXXX)
    case $kind in
        root) type=$GPT_ROOT_X86_64 ;;
        usr) type=$GPT_USR_X86_64; fs_src=$src/usr ;;
        *) fail "make_gpt: kind must be root or usr" ;;
    esac
    "make_$fs" "$fs_src" "$fsimg"
    local bytes sectors
    bytes=$(stat -c %s "$fsimg")
    local mib=$(( (bytes + 1048575) / 1048576 ))   # partition rounded up to MiB
    sectors=$(( mib * 2048 ))
    rm -f "$out"
    truncate -s $(( (2048 + sectors + 2048) * 512 )) "$out"
    sfdisk -q "$out" >/dev/null <<EOF
label: gpt
start=2048, size=$sectors, type=$type, name=$kind-x86-64
EOF
    dd if="$fsimg" of="$out" bs=512 seek=2048 conv=notrunc status=none
    rm -f "$fsimg"
}
