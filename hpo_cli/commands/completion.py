"""Shell completion for bash: ``eval "$(hpo completion bash)"`` (in ~/.bashrc).

The subcommands and their options complete from this script; ``hpo run`` and ``hpo gradcheck``
overrides (config groups, their options, keys) complete from Hydra's own completion, asked as
``hpo run -sc query=bash`` with the line as Hydra's app would see it.
"""

from __future__ import annotations

BASH = r"""# hpo: bash completion (eval "$(hpo completion bash)")
_hpo_complete() {
    local line=${COMP_LINE:0:COMP_POINT}
    local cur=${line##*[[:space:]]}
    local -a words=($line)
    local n=${#words[@]}
    [[ -z $cur ]] && n=$((n + 1))
    local candidates=""
    if (( n <= 2 )); then
        local commands="run resume compare export plot dashboard bench gradcheck completion --help --version"
        candidates=$(compgen -W "$commands" -- "$cur")
    else
        case ${words[1]} in
            run|gradcheck)
                local rest=${line#*"${words[1]}"}
                candidates=$(COMP_LINE="hpo$rest" COMP_POINT=$((3 + ${#rest})) hpo run -sc query=bash 2>/dev/null) ;;
            resume|compare)
                candidates=$(compgen -d -- "$cur"; compgen -W "--help --out" -- "$cur") ;;
            export|plot|dashboard)
                candidates=$(compgen -d -- "$cur"; compgen -W "--help --storage --kind --port" -- "$cur") ;;
            bench)
                candidates=$(compgen -W "quick --check --update --baseline-dir --results-dir --help" -- "$cur") ;;
            completion)
                candidates=$(compgen -W "bash" -- "$cur") ;;
        esac
    fi
    # bash splits words at '=' (COMP_WORDBREAKS): reply with what follows the word's last '='
    local prefix=""
    [[ $cur == *=* && $COMP_WORDBREAKS == *=* ]] && prefix=${cur%=*}=
    COMPREPLY=()
    local c
    for c in $candidates; do
        [[ $c == "$cur"* ]] && COMPREPLY+=("${c#"$prefix"}")
    done
}
complete -o nospace -o default -F _hpo_complete hpo
"""


def completion(shell: str) -> int:
    print(BASH, end="")
    return 0
