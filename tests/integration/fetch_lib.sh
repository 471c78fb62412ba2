# Shared by the fetch tests (fetch.sh, fetch_http.sh), sourced after lib.sh.

# fetch_setup: ARCH, this machine's architecture as systemd spells it (%a);
# two signing keys in a private GNUPGHOME: the trusted one's public key is
# the keyring rdext gets (KEYRING), the other (evil) signs what must be
# refused.
fetch_setup() {
    case $(uname -m) in
        x86_64) ARCH=x86-64 ;;
        aarch64) ARCH=arm64 ;;
        *) skip "architecture $(uname -m) not covered" ;;
    esac
    export GNUPGHOME=$TEST_DIR/gnupg
    mkdir -m 700 "$GNUPGHOME"
    local who
    for who in good evil; do
        gpg --batch --quiet --passphrase '' --quick-gen-key "rdext test <$who@example.org>" ed25519 sign never 2>/dev/null
    done
    KEYRING=$TEST_DIR/trusted.gpg
    gpg --batch --export good@example.org >"$KEYRING"
    [[ -s $KEYRING ]] || fail "test setup: no keyring exported"
}

# image NAME VERSION OUT [VERSION_ID]: an erofs sysext NAME saying VERSION
# (built in $B/tree, with the file $T/NAME holding VERSION)
image() {
    rm -rf "$B/tree"
    make_ext_tree "$B/tree" "$1" sysext ID=debian "VERSION_ID=${4:-12}" -- "$T/$1=$2"
    make_erofs "$B/tree" "$3"
}
