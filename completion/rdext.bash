# bash completion for rdext(8)
_rdext() {
    local cur prev words cword
    _init_completion -s 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
    }
    local commands="merge unmerge refresh status list mark-good count-tries inspect varlink fetch"
    local options="--root= --cmdline-file= --log-level= --image-policy= --mutable= --force --noexec= --always-refresh= --os-release= --certificate= --keyring= --ca= --timeout= --refresh --json --json= --help --version"
    case $cur in
        --root=*|--cmdline-file=*|--os-release=*|--certificate=*|--keyring=*|--ca=*)
            local prefix=${cur%%=*}=
            COMPREPLY=($(compgen -P "$prefix" -f -- "${cur#*=}"))
            return ;;
        --mutable=*)
            COMPREPLY=($(compgen -P "--mutable=" -W "no auto yes import ephemeral ephemeral-import" -- "${cur#*=}"))
            return ;;
        --noexec=*|--always-refresh=*)
            local prefix=${cur%%=*}=
            COMPREPLY=($(compgen -P "$prefix" -W "yes no" -- "${cur#*=}"))
            return ;;
        --json=*)
            COMPREPLY=($(compgen -P "--json=" -W "short pretty off" -- "${cur#*=}"))
            return ;;
        --log-level=*)
            COMPREPLY=($(compgen -P "--log-level=" -W "err warning notice info debug" -- "${cur#*=}"))
            return ;;
        -*)
            COMPREPLY=($(compgen -W "$options" -- "$cur"))
            [[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
            return ;;
    esac
    if [[ $prev == inspect ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
}
complete -F _rdext rdext
