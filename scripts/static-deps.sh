#!/usr/bin/env bash
# Builds the C libraries rdext links as static archives, for a fully static
# rdext (cmake -DRDEXT_STATIC=ON runs this at configure time). Debian 12's
# -dev packages ship only shared objects for libmount, libcryptsetup, libkmod
# and libdevmapper, so they are built here from Debian's own source packages
# (with Debian's patches): util-linux (libmount, libblkid, libuuid), lvm2
# (libdevmapper only), kmod (libkmod, and the static kmod tool
# <prefix>/libexec/rdext-kmod that rdext runs as depmod), cryptsetup
# (libcryptsetup, OpenSSL backend) and openssl (libcrypto, trimmed: see
# build_openssl). For `rdext-fetch`, the second static binary that fetches
# over http(s), also curl (libcurl for HTTP and HTTPS only, see build_curl)
# against a second OpenSSL with TLS (build_openssl_tls), both installed
# under <prefix>/fetch so that the merge binary's libcrypto stays as
# trimmed as it is. json-c, zlib, liblzma and libzstd come as static archives
# with Debian's -dev packages (the decompressors only for the kmod tool:
# rdext's libkmod leaves decompression to the kernel, see build_kmod).
#
# Everything is installed into ONE prefix, <cache>/<stamp>, where
# <stamp> hashes this script, the source package versions and the compiler
# (the .pc files hold absolute paths, so the prefix never moves). When that
# install is complete the script only prints the prefix: a rebuild is a no-op.
# The prefix is the only thing printed on stdout; progress goes to stderr.
#
# Environment:
#   RDEXT_CACHE_DIR             cache root shared with the VM tests; this script
#                               uses its static-deps/ (default /var/cache/rdext)
#   RDEXT_UTIL_LINUX_VERSION    source versions to build (default: the newest
#   RDEXT_LVM2_VERSION            in the Debian suite's index, as apt-get source
#   RDEXT_KMOD_VERSION            would pick, resolved once and remembered in
#   RDEXT_CRYPTSETUP_VERSION      <cache>/apt/default-versions; a version
#   RDEXT_OPENSSL_VERSION         the mirror no longer serves is passed over)
#   RDEXT_CURL_VERSION
#   RDEXT_STATIC_DEPS_UPDATE=1  refresh the source index and the default versions
#   RDEXT_STATIC_DEPS_CFLAGS    CFLAGS for the libraries
#                               (default -Os -ffunction-sections -fdata-sections:
#                               the libraries go into every initrd)
#   RDEXT_DEBIAN_MIRROR, RDEXT_DEBIAN_SECURITY_MIRROR, RDEXT_DEBIAN_SUITE
#                               where the sources come from (default
#                               deb.debian.org, the running system's codename)
#   CC                          C compiler (default cc)
#
# Downloaded sources are kept in <cache>/sources (Debian removes a
# version from the archive once it is superseded): dropping a version's
# .dsc, .orig and .debian files there makes it buildable offline. Build
# logs are in <cache>/logs/<stamp>/; the tail of a failing one is
# printed. Old <stamp> prefixes are not removed (a build tree may still use
# one): delete them by hand.
set -euo pipefail
# The whole script is one compound command, read before any of it runs: an
# edit to this file while a build runs cannot change the running build.
{

self=$(readlink -f "${BASH_SOURCE[0]}")
packages=(util-linux lvm2 kmod cryptsetup openssl curl)

say() { printf 'static-deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -n "${RDEXT_CACHE_DIR:-}" ]; then
    cache=$RDEXT_CACHE_DIR/static-deps
elif [ "$(id -u)" = 0 ]; then
    cache=/var/cache/rdext/static-deps
else
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/rdext/static-deps
fi
mkdir -p "$cache"
cache=$(cd "$cache" && pwd -P)

export CC=${CC:-cc}
cflags=${RDEXT_STATIC_DEPS_CFLAGS:--Os -ffunction-sections -fdata-sections}

# --- private apt configuration: deb-src entries without touching the system's
aptdir=$cache/apt
# shellcheck source=/dev/null
suite=${RDEXT_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
mirror=${RDEXT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${RDEXT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
sources_list="deb-src [signed-by=$keyring] $mirror $suite main
deb-src [signed-by=$keyring] $mirror $suite-updates main
deb-src [signed-by=$keyring] $security_mirror $suite-security main"
apt_opts=(
    -o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
    -o "APT::Sandbox::User=root" -o "Acquire::Languages=none"
)

# --- sources: cached in $cache/sources, downloaded when missing
srcdir=$cache/sources
mkdir -p "$srcdir"
dsc_of() { echo "$srcdir/${1}_${2#*:}.dsc"; }
have_source() {
    local dsc f
    dsc=$(dsc_of "$1" "$2")
    [ -f "$dsc" ] || return 1
    for f in $(awk '/^Files:/{f=1; next} /^[^ ]/{f=0} f{print $3}' "$dsc"); do
        [ -f "$srcdir/$f" ] || return 1
    done
}
fetch_source() {
    local p=$1 v=$2 tmp
    tmp=$(mktemp -d "$srcdir/.download.XXXXXX")
    if ! (cd "$tmp" && apt-get "${apt_opts[@]}" -qq source --download-only "$p=$v") >&2; then
        rm -rf "$tmp"
        return 1
    fi
    mv -f "$tmp"/* "$srcdir"/
    rmdir "$tmp"
}

# versions_newest_first NAME: the source versions of NAME in the index.
versions_newest_first() {
    local v sorted=()
    for v in $(apt-cache "${apt_opts[@]}" showsrc "$1" |
               awk -v p="$1" '/^Package: /{n=$2} /^Version: /{if (n==p) print $2}' | sort -u); do
        local i=${#sorted[@]}
        sorted+=("$v")
        while [ "$i" -gt 0 ] && dpkg --compare-versions "${sorted[i]}" gt "${sorted[i-1]}"; do
            local t=${sorted[i]}; sorted[i]=${sorted[i-1]}; sorted[i-1]=$t; i=$((i - 1))
        done
    done
    printf '%s\n' "${sorted[@]}"
}

apt_update() {
    say "refreshing the source index ($suite, $suite-updates, $suite-security)"
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    exec 8>"$cache/.lock-apt"  # one apt-get update on the private lists at a time
    flock 8
    printf '%s\n' "$sources_list" >"$aptdir/sources.list"
    apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update (private source index in $aptdir) failed"
    # The newest version in the index that the mirror still serves (an index
    # can name a security update whose files are not there yet or any more):
    # downloaded here, once, into the sources cache.
    local p v best out=
    for p in "${packages[@]}"; do
        best=
        for v in $(versions_newest_first "$p"); do
            if have_source "$p" "$v" || fetch_source "$p" "$v"; then best=$v; break; fi
            say "  $p $v: not downloadable, trying an older version"
        done
        [ -n "$best" ] || die "no downloadable source package $p in the index"
        out+="$p $best"$'\n'
    done
    printf '%s\n' "$sources_list" >"$aptdir/default-versions.sources"
    printf '%s' "$out" >"$aptdir/default-versions.tmp"
    mv -f "$aptdir/default-versions.tmp" "$aptdir/default-versions"
    flock -u 8
}

# --- versions: env override, else the remembered default
declare -A version
version_var() { local v=${1^^}; echo "RDEXT_${v//-/_}_VERSION"; }
need_defaults=
for p in "${packages[@]}"; do
    var=$(version_var "$p")
    version[$p]=${!var:-}
    [ -n "${version[$p]}" ] || need_defaults=1
done
if [ -n "$need_defaults" ]; then
    if [ "${RDEXT_STATIC_DEPS_UPDATE:-0}" = 1 ] || [ ! -f "$aptdir/default-versions" ] ||
       [ "$(cat "$aptdir/default-versions.sources" 2>/dev/null)" != "$sources_list" ]; then
        apt_update
    fi
    for p in "${packages[@]}"; do  # a package added to this script since
        grep -q "^$p " "$aptdir/default-versions" || { apt_update; break; }
    done
    while read -r p v; do
        [ -n "${version[$p]:-}" ] || version[$p]=$v
    done <"$aptdir/default-versions"
fi

# --- stamp and prefix
stamp_input="script $(sha256sum <"$self")
cflags $cflags
cc $(readlink -f "$(command -v "${CC%% *}")") $($CC -dumpmachine) $($CC --version | head -n1)"
for p in "${packages[@]}"; do stamp_input+=$'\n'"$p ${version[$p]}"; done
stamp=$(printf '%s\n' "$stamp_input" | sha256sum | cut -c1-16)
prefix=$cache/$stamp

if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi

# Cold path from here. One builder per stamp at a time.
exec 9>"$cache/.lock-$stamp"
flock 9
if [ -f "$prefix/.complete" ]; then
    echo "$prefix"
    exit 0
fi
start=$SECONDS
say "building static libraries into $prefix"
for p in "${packages[@]}"; do say "  $p ${version[$p]}"; done

# --- build tools and the -dev packages whose static archives are linked
tools=(build-essential dpkg-dev autoconf automake libtool autopoint gettext pkgconf
       libssl-dev libjson-c-dev zlib1g-dev liblzma-dev libzstd-dev)
missing=()
for t in "${tools[@]}"; do
    dpkg-query -W -f='${Status}\n' "$t" 2>/dev/null | grep -q "install ok installed" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (run scripts/setup-debian.sh as root)"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 ||
        die "apt-get install ${missing[*]} failed"
fi

updated=
for p in "${packages[@]}"; do
    v=${version[$p]}
    have_source "$p" "$v" && continue
    say "downloading source $p $v"
    [ -f "$aptdir/sources.list" ] || { apt_update; updated=1; }
    if ! fetch_source "$p" "$v"; then
        [ -z "$updated" ] && { apt_update; updated=1; }
        fetch_source "$p" "$v" ||
            die "cannot download $p $v (superseded in the archive? set $(version_var "$p") or put its .dsc and tarballs in $srcdir)"
    fi
    have_source "$p" "$v" || die "$p $v: downloaded files do not match $(dsc_of "$p" "$v")"
done

# --- unpack (dpkg-source applies Debian's patches)
work=$cache/work/$stamp
logs=$cache/logs/$stamp
rm -rf "${work:?}" "${prefix:?}" "${logs:?}"
mkdir -p "$work" "$prefix/lib/pkgconfig" "$prefix/include" "$logs"
for p in "${packages[@]}"; do
    dpkg-source -x "$(dsc_of "$p" "${version[$p]}")" "$work/$p" >"$logs/$p.log" 2>&1 ||
        { tail -n 30 "$logs/$p.log" >&2; die "dpkg-source -x $p failed"; }
done
# The TLS OpenSSL for rdext-fetch: the same source, a tree of its own.
dpkg-source -x "$(dsc_of openssl "${version[openssl]}")" "$work/openssl-tls" >"$logs/openssl-tls.log" 2>&1 ||
    { tail -n 30 "$logs/openssl-tls.log" >&2; die "dpkg-source -x openssl (TLS tree) failed"; }

jobs=$(nproc)
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export CFLAGS=$cflags
export LC_ALL=C
common=(--prefix="$prefix" --libdir="$prefix/lib" --includedir="$prefix/include"
        --enable-static --disable-shared --disable-dependency-tracking)

build_util_linux() {
    cd "$work/util-linux"
    GTKDOCIZE=true autoreconf -fi
    ./configure "${common[@]}" --sysconfdir=/etc --localstatedir=/var --runstatedir=/run \
        --disable-all-programs --enable-libuuid --enable-libblkid --enable-libmount \
        --disable-nls --disable-gtk-doc --disable-asciidoc --disable-bash-completion \
        --without-python --without-selinux --without-udev --without-systemd \
        --without-cryptsetup --without-econf --without-audit --without-smack \
        --without-btrfs --without-readline --without-ncursesw --without-ncurses \
        --without-tinfo --without-libmagic --without-user --without-utempter \
        --without-cap-ng --without-libz
    make -j"$jobs" V=1
    make install
}

build_lvm2() {
    cd "$work/lvm2"
    # Device nodes as Debian's libdevmapper makes them (root:disk 0660);
    # without udev sync libdevmapper creates /dev/mapper nodes itself.
    ./configure --prefix="$prefix" --libdir="$prefix/lib" --includedir="$prefix/include" \
        --with-usrlibdir="$prefix/lib" --with-usrsbindir="$prefix/sbin" \
        --with-optimisation= --enable-static_link --enable-pkgconfig \
        --disable-udev_sync --disable-udev_rules --disable-selinux --disable-readline \
        --disable-blkid_wiping --disable-dmeventd --disable-cmdlib --disable-lvmpolld \
        --disable-systemd-journal --disable-app-machineid --disable-notify-dbus \
        --with-thin=none --with-cache=none --with-vdo=none --with-writecache=none \
        --with-integrity=none \
        --with-device-uid=0 --with-device-gid=6 --with-device-mode=0660 \
        --with-default-pid-dir=/run --with-default-dm-run-dir=/run \
        --with-default-run-dir=/run/lvm --with-default-locking-dir=/run/lock/lvm \
        --with-confdir=/etc --with-default-system-dir=/etc/lvm
    make -j"$jobs" -C libdm V=1
    make -C libdm install_static install_include install_pkgconfig
}

# kmod_kernel_decompress_patch: the change to kmod 30's libkmod that lets a
# libkmod without decompressors insert compressed modules: it passes such a
# file to finit_module() with MODULE_INIT_COMPRESSED_FILE, and the kernel
# decompresses it (Linux 5.17+, CONFIG_MODULE_DECOMPRESS; Debian's kernels
# have it), as kmod 31 and later do themselves. A libkmod with decompressors
# never hands a compressed file to finit_module(), so the change is inert there.
kmod_kernel_decompress_patch() {
    cat <<'PATCH'
--- a/libkmod/libkmod-module.c
+++ b/libkmod/libkmod-module.c
@@ -861,6 +861,30 @@
 
 extern long init_module(const void *mem, unsigned long len, const char *args);
 
+#ifndef MODULE_INIT_COMPRESSED_FILE
+#define MODULE_INIT_COMPRESSED_FILE 4
+#endif
+
+/*
+ * rdext: this libkmod is built without decompressors. A compressed module
+ * (xz, zstd or gzip magic) is then opened as a plain file, and finit_module()
+ * hands it to the kernel to decompress (Linux >= 5.17 with
+ * CONFIG_MODULE_DECOMPRESS), as kmod >= 31 does. With decompressors built in
+ * such a file never gets here (it is not "direct").
+ */
+static bool is_compressed_module(const void *mem, off_t size)
+{
+	static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0};
+	static const unsigned char zstd[] = {0x28, 0xb5, 0x2f, 0xfd};
+	static const unsigned char gz[] = {0x1f, 0x8b};
+
+	if (mem == NULL)
+		return false;
+	return (size >= (off_t)sizeof(xz) && memcmp(mem, xz, sizeof(xz)) == 0) ||
+	       (size >= (off_t)sizeof(zstd) && memcmp(mem, zstd, sizeof(zstd)) == 0) ||
+	       (size >= (off_t)sizeof(gz) && memcmp(mem, gz, sizeof(gz)) == 0);
+}
+
 /**
  * kmod_module_insert_module:
  * @mod: kmod module
@@ -911,6 +935,9 @@
 			kernel_flags |= MODULE_INIT_IGNORE_VERMAGIC;
 		if (flags & KMOD_INSERT_FORCE_MODVERSION)
 			kernel_flags |= MODULE_INIT_IGNORE_MODVERSIONS;
+		if (is_compressed_module(kmod_file_get_contents(mod->file),
+					 kmod_file_get_size(mod->file)))
+			kernel_flags |= MODULE_INIT_COMPRESSED_FILE;
 
 		err = finit_module(kmod_file_get_fd(mod->file), args, kernel_flags);
 		if (err == 0 || errno != ENOSYS)
PATCH
}

build_kmod() {
    cd "$work/kmod"
    # kmod's configure refuses --enable-static; the library builds fine.
    sed -i '/--enable-static is not supported/d' configure.ac
    if grep -q 'enable-static is not supported' configure.ac; then
        echo "kmod: cannot drop the --enable-static check"; return 1
    fi
    kmod_kernel_decompress_patch | patch -p1 --forward --no-backup-if-mismatch ||
        { echo "kmod: the kernel-decompression change does not apply to kmod ${version[kmod]}"; return 1; }
    touch libkmod/docs/gtk-doc.make  # as kmod's autogen.sh without gtkdocize
    autoreconf -fi
    local opts=("${common[@]}" --sysconfdir=/etc --disable-manpages --disable-test-modules
                --disable-python --disable-debug)
    # Two builds of one tree. The tools, with every decompressor: the kmod
    # multi-call binary, installed as <prefix>/libexec/rdext-kmod, is what
    # rdext runs as depmod (by argv[0]) for the merged module index, in the
    # initrd as well, and depmod reads compressed modules. No OpenSSL: it
    # only shows module signature details, and would grow the tool by
    # libcrypto's size.
    mkdir tools-build lib-build
    (
        cd tools-build
        ../configure "${opts[@]}" --with-xz --with-zstd --with-zlib
        # -all-static: libtool links the tool fully static (initrds have no libraries).
        make -j"$jobs" V=1 LDFLAGS=-all-static
        install -D -m 0755 tools/kmod "$prefix/libexec/rdext-kmod"
    )
    # The libkmod rdext links: no decompressors (zstd, zlib and xz were 0.37
    # MiB of the static rdext); compressed modules go to the kernel as they
    # are (kmod_kernel_decompress_patch).
    cd lib-build
    ../configure "${opts[@]}" --without-xz --without-zstd --without-zlib
    make -j"$jobs" V=1 libkmod/libkmod.la
    make install-libLTLIBRARIES install-includeHEADERS install-pkgconfigDATA
}

# What rdext needs from libcrypto: X.509 and PKCS#7 (signature check of
# root hashes: RSA, ECDSA, EdDSA), SHA-2 digests, and what libcryptsetup's
# and libkmod's OpenSSL backends call. Debian's full libcrypto.a puts 3.2
# MiB into the static binary; without TLS, sockets, engines, legacy ciphers
# and the assembler variants (nothing here hashes bulk data: the kernel
# checks verity) it puts 1.3 MiB. Also left out: RFC 3779 (IP address and
# AS number certificate extensions), CMAC, async jobs, the secure heap (-28
# KiB together), source file names in error records and the unrolled
# tables and loops of AES, SHA and the modes (OPENSSL_SMALL_FOOTPRINT;
# rdext hashes a few KiB, -60 KiB together). Kept: the error strings (rdext
# shows them when a signature fails). (OpenSSL 3.0 has no switch for
# X25519/Ed25519/Ed448 alone: no-ecx came with 3.2.)
openssl_trim=(no-shared no-module no-dso no-engine no-tests no-ui-console no-autoload-config
    no-legacy no-deprecated no-ssl3 no-tls1 no-tls1_1
    no-dtls no-srtp no-srp no-ct no-ocsp no-cmp no-cms no-ts no-comp
    no-aria no-bf no-blake2 no-camellia no-cast no-chacha no-poly1305 no-des no-dh
    no-dsa no-ec2m no-gost no-idea no-md4 no-mdc2 no-ocb no-rc2 no-rc4 no-rc5
    no-rmd160 no-scrypt no-seed no-siphash no-siv no-sm2 no-sm3 no-sm4 no-whirlpool
    no-asm no-rfc3779 no-cmac no-async no-secure-memory no-filenames
    -DOPENSSL_SMALL_FOOTPRINT)

build_openssl() {
    cd "$work/openssl"
    # The merge binary's: no TLS and no sockets at all.
    ./Configure linux-x86_64 --prefix="$prefix" --libdir=lib --openssldir=/usr/lib/ssl \
        "${openssl_trim[@]}" no-sock no-tls1_2 no-tls1_3
    make -j"$jobs" build_libs
    make install_dev
}

# rdext-fetch's OpenSSL (libssl for libcurl): the same trimmed libcrypto
# plus sockets and TLS 1.2 and 1.3 (AES-GCM, ECDHE; no DHE, no ChaCha20),
# into <prefix>/fetch. It is a superset of the one above, so rdext-fetch
# links the whole chain (libcryptsetup, libkmod) against it instead.
build_openssl_tls() {
    cd "$work/openssl-tls"
    ./Configure linux-x86_64 --prefix="$prefix/fetch" --libdir=lib --openssldir=/usr/lib/ssl \
        "${openssl_trim[@]}"
    make -j"$jobs" build_libs
    make install_dev
}

# libcurl for rdext-fetch (src/fetch/http_source.cc): HTTP and HTTPS with
# OpenSSL and nothing else. No other protocol, no proxy (rdext sets none and
# a proxy from the environment must not redirect the boot's downloads), no
# compression, HTTP/2, IDN, PSL, cookies, HSTS, alt-svc, authentication,
# netrc or DoH: what a GET of a public update source does not use. The CA
# bundle is always set by rdext (no compiled-in default). Threaded
# resolver: name lookups obey the deadline too.
build_curl() {
    cd "$work/curl"
    # Debian's last two patches turn the tree into its GnuTLS and NSS
    # flavours (libcurl-gnutls, libcurl-nss); its OpenSSL libcurl is built
    # without them, as debian/rules does.
    local last
    last=$(grep -v '^#' debian/patches/series | grep . | tail -n 2 | tr '\n' ' ')
    [ "$last" = "90_gnutls.patch 99_nss.patch " ] || { echo "curl: unexpected last patches: $last"; return 1; }
    patch -R -p1 --no-backup-if-mismatch <debian/patches/99_nss.patch
    patch -R -p1 --no-backup-if-mismatch <debian/patches/90_gnutls.patch
    autoreconf -fi
    PKG_CONFIG_PATH="$prefix/fetch/lib/pkgconfig" ./configure "${common[@]}" \
        --prefix="$prefix/fetch" --libdir="$prefix/fetch/lib" --includedir="$prefix/fetch/include" \
        --with-openssl="$prefix/fetch" --disable-openssl-auto-load-config \
        --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb \
        --disable-smtp --disable-gopher --disable-mqtt --disable-proxy --disable-manual \
        --disable-libcurl-option --disable-verbose --disable-sspi --disable-crypto-auth --disable-ntlm \
        --disable-ntlm-wb --disable-tls-srp --disable-unix-sockets --disable-cookies \
        --disable-http-auth --disable-doh --disable-mime --disable-netrc --disable-progress-meter \
        --disable-dnsshuffle --disable-get-easy-options --disable-alt-svc --disable-headers-api \
        --disable-hsts --disable-websockets --enable-threaded-resolver --enable-ipv6 \
        --without-ca-bundle --without-ca-path --without-ca-fallback \
        --without-zlib --without-brotli --without-zstd --without-libpsl --without-libgsasl \
        --without-libssh2 --without-libssh --without-librtmp --without-libidn2 --without-nghttp2 \
        --without-ngtcp2 --without-nghttp3 --without-hyper --without-gssapi
    make -j"$jobs" -C lib V=1
    make -C lib install
    make -C include install
    install -D -m 0644 libcurl.pc "$prefix/fetch/lib/pkgconfig/libcurl.pc"
}

build_cryptsetup() {
    cd "$work/cryptsetup"
    ./autogen.sh
    # --static: configure's link tests see the whole static chain.
    PKG_CONFIG="pkg-config --static" ./configure "${common[@]}" \
        --with-crypto_backend=openssl \
        --disable-cryptsetup --disable-veritysetup --disable-integritysetup \
        --disable-ssh-token --disable-external-tokens --disable-nls --disable-selinux \
        --disable-udev --disable-asciidoc --disable-pwquality --disable-passwdqc \
        --with-tmpfilesdir="$prefix/lib/tmpfiles.d" \
        ac_cv_lib_popt_poptConfigFileToString=yes
    make -j"$jobs" V=1
    make install
}

# run_build NAME: build_NAME with its output in $logs/NAME.log. Not to be
# called as a condition: errexit would be off inside it.
run_build() {
    local p=$1 t0=$SECONDS rc
    set +e
    ( PS4='+ [${SECONDS}s] '; set -euxo pipefail; "build_${p//-/_}" ) >"$logs/$p.log" 2>&1 </dev/null
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        say "  $p built in $((SECONDS - t0)) s"
    else
        say "  $p FAILED after $((SECONDS - t0)) s; last lines of $logs/$p.log:"
        tail -n 40 "$logs/$p.log" | sed 's/^/    | /' >&2
        exit 1
    fi
}

# run_parallel NAME...: the builds side by side; fails if any failed.
run_parallel() {
    local p pid pids=() failed=0
    for p in "$@"; do
        run_build "$p" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ $failed = 0 ] || die "build failed (logs in $logs)"
}

# kmod needs openssl; cryptsetup needs util-linux, lvm2 and openssl; curl
# needs the TLS OpenSSL.
run_parallel util-linux lvm2 openssl openssl-tls
run_parallel kmod cryptsetup curl

# libkmod.pc does not name libcrypto, which libkmod uses with --with-openssl.
pc=$prefix/lib/pkgconfig/libkmod.pc
grep -q '^Requires.private:.*libcrypto' "$pc" ||
    if grep -q '^Requires.private:' "$pc"; then
        sed -i 's/^Requires.private:.*/&, libcrypto/' "$pc"
    else
        echo 'Requires.private: libcrypto' >>"$pc"
    fi
rm -f "$prefix"/lib/*.la
rm -f "$prefix"/fetch/lib/*.la
rm -rf "${prefix:?}/share" "${prefix:?}/sbin" "${prefix:?}/bin" "${prefix:?}/etc" "${prefix:?}/lib/tmpfiles.d"
rm -rf "${prefix:?}/fetch/share" "${prefix:?}/fetch/bin"

# Proof that the whole chain links statically.
mods=(mount blkid uuid devmapper libcryptsetup libkmod)
cat >"$work/smoke.c" <<'EOF'
#include <blkid.h>
#include <libcryptsetup.h>
#include <libkmod.h>
#include <libmount.h>
int main(void) {
    struct crypt_device *cd = 0;
    crypt_init(&cd, "/nonexistent");
    mnt_free_context(mnt_new_context());
    blkid_free_probe(blkid_new_probe());
    kmod_unref(kmod_new(0, 0));
    return 0;
}
EOF
# shellcheck disable=SC2046
"$CC" -o "$work/smoke" "$work/smoke.c" -static $(pkg-config --static --cflags --libs "${mods[@]}") \
    >"$logs/smoke.log" 2>&1 || { tail -n 40 "$logs/smoke.log" >&2; die "static link test failed"; }
# The depmod for initrds: static, and it answers as depmod.
kmod_tool=$prefix/libexec/rdext-kmod
if LC_ALL=C readelf -l "$kmod_tool" | grep -q 'program interpreter'; then die "$kmod_tool is not static"; fi
(exec -a depmod "$kmod_tool" --version) >>"$logs/smoke.log" 2>&1 || die "$kmod_tool does not run as depmod"
# The depmod reads every compressed module format; rdext's libkmod none.
for f in +XZ +ZSTD +ZLIB; do
    grep -q -- "$f" "$logs/smoke.log" || die "$kmod_tool lacks $f (kmod --version in $logs/smoke.log)"
done
if nm "$prefix/lib/libkmod.a" 2>/dev/null | grep -qE ' U (lzma_|ZSTD_|gz|inflate)'; then
    die "$prefix/lib/libkmod.a uses a decompressor; it should leave decompression to the kernel"
fi
grep -q MODULE_INIT_COMPRESSED_FILE "$work/kmod/libkmod/libkmod-module.c" ||
    die "libkmod lacks the kernel-decompression change"
# libcurl links statically against the TLS OpenSSL and speaks HTTP(S) only.
cat >"$work/smoke-curl.c" <<'EOF'
#include <curl/curl.h>
#include <stdio.h>
int main(void) {
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    for (const char *const *p = v->protocols; *p; p++) printf("%s ", *p);
    printf("%s\n", v->ssl_version);
    return curl_easy_init() ? 0 : 1;
}
EOF
# shellcheck disable=SC2046
"$CC" -o "$work/smoke-curl" "$work/smoke-curl.c" -static \
    $(PKG_CONFIG_PATH=$prefix/fetch/lib/pkgconfig pkg-config --static --cflags --libs libcurl) \
    >>"$logs/smoke.log" 2>&1 || { tail -n 40 "$logs/smoke.log" >&2; die "static libcurl link test failed"; }
curl_says=$("$work/smoke-curl") || die "the static libcurl smoke test failed"
[[ $curl_says == "http https OpenSSL/"* ]] || die "libcurl offers more or less than http and https: $curl_says"

{
    printf '%s\n' "$stamp_input"
    echo "built $(date -u +%FT%TZ) in $((SECONDS - start)) s"
} >"$prefix/.complete"
rm -rf "$work"
say "done in $((SECONDS - start)) s"
echo "$prefix"

exit 0
}
