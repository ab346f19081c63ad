"""``crowdtui completion bash|zsh``: a shell completion script made from the command tree.

The script holds, for every command path (``""``, ``doc``, ``doc checkout`` ...), the words
that may follow (subcommands, or the choices of a positional argument) and the options it
takes, so it completes every command there is, new ones included, without running Python
on each TAB. After ``-w``/``--workspace`` it completes folders; where a command takes an
agent's name (arguments marked with ``common.completes_agents``) it also offers the
roster's names, which ``crowdtui completion --agents`` prints (the workspace's roster,
read from agents/ without the store: fast). Install::

    crowdtui completion bash > ~/.local/share/bash-completion/completions/crowdtui
    crowdtui completion zsh > "${fpath[1]}/_crowdtui"     # or any folder in $fpath

``--json`` prints ``{"shell", "script"}``.
"""

from __future__ import annotations

import argparse

from crowdtui.cli.common import AGENT_NAMES, emit, wants_json

SHELLS = ("bash", "zsh")


def register(sub) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                       description="Print a completion script for SHELL on stdout; source it, or save "
                       "it where your shell loads completions from.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", nargs="?", help="bash or zsh")
    p.add_argument("--agents", action="store_true", help=argparse.SUPPRESS)  # the scripts call it
    p.set_defaults(func=cmd_completion)


def command_table() -> dict[str, tuple[list[tuple[str, str]], list[str], bool]]:
    """``path -> ([(word, help)], [option strings], takes an agent's name)`` for the root and
    every command; paths begin with ``crowdtui`` (``"crowdtui doc checkout"``: bash's arrays
    take no empty key)."""
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
        agents = any(getattr(a, "completer", None) == AGENT_NAMES for a in sub._actions if not a.option_strings)
        table[" ".join(("crowdtui",) + path)] = (words, options, agents)
    return table


def _quote(text: str) -> str:
    """Single-quoted for bash and zsh alike."""
    return "'" + text.replace("'", "'\\''") + "'"


def bash_script() -> str:
    table = command_table()
    words = "\n".join(f"    [{_quote(k)}]={_quote(' '.join(w for w, _h in v[0]))}" for k, v in table.items())
    opts = "\n".join(f"    [{_quote(k)}]={_quote(' '.join(v[1]))}" for k, v in table.items())
    agents = " ".join(_quote(k) for k, v in table.items() if v[2])
    return f"""# bash completion for crowdtui (made by `crowdtui completion bash`)
declare -gA _crowdtui_words=(
{words}
)
declare -gA _crowdtui_opts=(
{opts}
)
declare -ga _crowdtui_agent_paths=({agents})

_crowdtui() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} path=crowdtui next w i words
    local -a ws=()
    case "$prev" in
        -w|--workspace) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        case "$w" in
            -w|--workspace) ws=(--workspace "${{COMP_WORDS[i+1]}}"); ((i++)); continue ;;
            -*) continue ;;
        esac
        next="$path $w"
        [[ -n ${{_crowdtui_opts[$next]+set}} ]] && path=$next
    done
    if [[ $prev == --as ]]; then
        COMPREPLY=($(compgen -W "$(crowdtui "${{ws[@]}}" completion --agents 2>/dev/null)" -- "$cur"))
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${{_crowdtui_opts[$path]}}" -- "$cur"))
        return 0
    fi
    words=${{_crowdtui_words[$path]}}
    for w in "${{_crowdtui_agent_paths[@]}}"; do
        if [[ $w == "$path" ]]; then
            words="$words $(crowdtui "${{ws[@]}}" completion --agents 2>/dev/null)"
            break
        fi
    done
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
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
    agents = " ".join(_quote(k) for k, v in table.items() if v[2])
    return f"""#compdef crowdtui
# zsh completion for crowdtui (made by `crowdtui completion zsh`)
typeset -gA _crowdtui_words _crowdtui_opts
_crowdtui_words=(
{words}
)
_crowdtui_opts=(
{opts}
)
typeset -ga _crowdtui_agent_paths
_crowdtui_agent_paths=({agents})

_crowdtui() {{
    local p=crowdtui next w i
    local -a ws agents
    case "${{words[CURRENT-1]}}" in
        -w|--workspace) _files -/; return ;;
    esac
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        if [[ $w == (-w|--workspace) ]]; then ws=(--workspace "${{words[i+1]}}"); ((i++)); continue; fi
        [[ $w == -* ]] && continue
        next="$p $w"
        (( ${{+_crowdtui_opts[$next]}} )) && p=$next
    done
    if [[ ${{words[CURRENT-1]}} == --as ]]; then
        agents=(${{(f)"$(crowdtui $ws completion --agents 2>/dev/null)"}})
        compadd -a agents
    elif [[ $PREFIX == -* ]]; then
        local -a opts
        opts=(${{=_crowdtui_opts[$p]}})
        compadd -a opts
    else
        local -a choices
        choices=("${{(@f)_crowdtui_words[$p]}}")
        (( ${{#choices}} )) && [[ -n ${{choices[1]}} ]] && _describe -t commands 'crowdtui' choices
        if (( ${{_crowdtui_agent_paths[(Ie)$p]}} )); then
            agents=(${{(f)"$(crowdtui $ws completion --agents 2>/dev/null)"}})
            compadd -a agents
        fi
    fi
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _crowdtui "$@"
else
    compdef _crowdtui crowdtui
fi
"""


def cmd_completion(args) -> int:
    if args.agents:
        return _agent_names(args)
    if args.shell is None:
        from crowdtui.errors import UsageError

        raise UsageError("name the shell: `crowdtui completion bash` or `crowdtui completion zsh`")
    script = bash_script() if args.shell == "bash" else zsh_script()
    emit(args, {"shell": args.shell, "script": script}, script.rstrip("\n"))
    return 0


def _agent_names(args) -> int:
    """The roster's agent names, one a line (nothing outside a workspace): what the scripts
    offer for an agent's name. Read from agents/ only, so a TAB costs no store."""
    from crowdtui.cli.common import workspace_of
    from crowdtui.errors import CrowdError
    from crowdtui.roster import load_roster

    try:
        names = load_roster(workspace_of(args)).names()
    except CrowdError:
        names = []
    emit(args, {"agents": names}, *names)
    return 0
