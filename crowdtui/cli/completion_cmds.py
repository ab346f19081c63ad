"""``crowdtui completion bash|zsh``: a shell completion script made from the command tree.

The script holds, for every command path (``""``, ``doc``, ``doc checkout`` ...), the words
that may follow (subcommands, or the choices of a positional argument) and the options it
takes, so it completes every command there is, new ones included, without running Python
on each TAB. After ``-w``/``--workspace`` it completes folders. Install::

    crowdtui completion bash > ~/.local/share/bash-completion/completions/crowdtui
    crowdtui completion zsh > "${fpath[1]}/_crowdtui"     # or any folder in $fpath

``--json`` prints ``{"shell", "script"}``.
"""

from __future__ import annotations

import argparse

from crowdtui.cli.common import emit

SHELLS = ("bash", "zsh")


def register(sub) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                       description="Print a completion script for SHELL on stdout; source it, or save "
                       "it where your shell loads completions from.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=cmd_completion)


def command_table() -> dict[str, tuple[list[tuple[str, str]], list[str]]]:
    """``path -> ([(word, help)], [option strings])`` for the root and every command; paths
    begin with ``crowdtui`` (``"crowdtui doc checkout"``: bash's arrays take no empty key)."""
    from crowdtui.cli import build_parser, subparsers_of, walk_commands

    parser = build_parser()
    table = {}
    for path, sub in [((), parser), *walk_commands(parser)]:
        words: list[tuple[str, str]] = []
        helps = {}
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
        words += [(name, helps.get(name, "")) for name, _child in subparsers_of(sub)]
        for action in sub._actions:
            if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
                words += [(str(c), "") for c in action.choices]
        options = sorted({o for a in sub._actions for o in a.option_strings if a.help != argparse.SUPPRESS})
        table[" ".join(("crowdtui",) + path)] = (words, options)
    return table


def _quote(text: str) -> str:
    """Single-quoted for bash and zsh alike."""
    return "'" + text.replace("'", "'\\''") + "'"


def bash_script() -> str:
    table = command_table()
    words = "\n".join(f"    [{_quote(k)}]={_quote(' '.join(w for w, _h in v[0]))}" for k, v in table.items())
    opts = "\n".join(f"    [{_quote(k)}]={_quote(' '.join(v[1]))}" for k, v in table.items())
    return f"""# bash completion for crowdtui (made by `crowdtui completion bash`)
declare -gA _crowdtui_words=(
{words}
)
declare -gA _crowdtui_opts=(
{opts}
)

_crowdtui() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} path=crowdtui next w i
    case "$prev" in
        -w|--workspace) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
        --as) return 0 ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        case "$w" in -*) continue ;; esac
        next="$path $w"
        [[ -n ${{_crowdtui_opts[$next]+set}} ]] && path=$next
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${{_crowdtui_opts[$path]}}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${{_crowdtui_words[$path]}}" -- "$cur"))
    fi
    return 0
}}
complete -o default -F _crowdtui crowdtui
"""


def zsh_script() -> str:
    table = command_table()

    def described(pairs) -> str:
        colon = "\\:"  # _describe splits a word from its help at the first unescaped colon
        return "\n".join(w.replace(":", colon) + ":" + " ".join(h.split()) for w, h in pairs)

    words = "\n".join(f"    {_quote(k)} {_quote(described(v[0]))}" for k, v in table.items())
    opts = "\n".join(f"    {_quote(k)} {_quote(' '.join(v[1]))}" for k, v in table.items())
    return f"""#compdef crowdtui
# zsh completion for crowdtui (made by `crowdtui completion zsh`)
typeset -gA _crowdtui_words _crowdtui_opts
_crowdtui_words=(
{words}
)
_crowdtui_opts=(
{opts}
)

_crowdtui() {{
    local p=crowdtui next w i
    case "${{words[CURRENT-1]}}" in
        -w|--workspace) _files -/; return ;;
        --as) return ;;
    esac
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        [[ $w == -* ]] && continue
        next="$p $w"
        (( ${{+_crowdtui_opts[$next]}} )) && p=$next
    done
    if [[ $PREFIX == -* ]]; then
        local -a opts
        opts=(${{=_crowdtui_opts[$p]}})
        compadd -a opts
    else
        local -a choices
        choices=("${{(@f)_crowdtui_words[$p]}}")
        (( ${{#choices}} )) && [[ -n ${{choices[1]}} ]] && _describe -t commands 'crowdtui' choices
    fi
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _crowdtui "$@"
else
    compdef _crowdtui crowdtui
fi
"""


def cmd_completion(args) -> int:
    script = bash_script() if args.shell == "bash" else zsh_script()
    emit(args, {"shell": args.shell, "script": script}, script.rstrip("\n"))
    return 0
