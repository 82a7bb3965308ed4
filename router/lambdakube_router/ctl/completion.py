"""``lambdakube completion bash``: a bash completion script generated from the parser.

Generated, not hand-written, so a new flag is completed without anyone remembering to.
Function names come from the router itself (``lambdakube get functions -o name``, with
the router, namespace and kubeconfig flags already typed on the line); zsh can use it through
``bashcompinit``.
"""

from __future__ import annotations

import argparse

#: Flags (with their values) that a completion's own ``get functions`` call is given too.
PASSED_ON = ("--router-url", "--token", "--namespace", "-n", "--kubeconfig", "--context", "--kubectl")
#: Subcommands whose positional argument is a function name.
NAMED = ("invoke", "describe", "logs", "bench")


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each subcommand's option strings ("" key: the subcommands)."""
    out: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out[""] = sorted(action.choices)
            for name, sub in action.choices.items():
                out[name] = sorted(o for a in sub._actions for o in a.option_strings)
    return out


def bash(parser: argparse.ArgumentParser, prog: str = "lambdakube") -> str:
    w = words(parser)
    cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in sorted(w.items()) if name)
    return f"""# bash completion for {prog}: eval "$({prog} completion bash)"
_{prog}_functions() {{
    local args=() i
    for ((i = 1; i < ${{#COMP_WORDS[@]}} - 1; i++)); do
        case "${{COMP_WORDS[i]}}" in
            {"|".join(PASSED_ON)}) args+=("${{COMP_WORDS[i]}}" "${{COMP_WORDS[i+1]}}") ;;
        esac
    done
    {prog} get functions -o name "${{args[@]}}" 2>/dev/null
}}
_{prog}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="${{COMP_WORDS[1]}}" opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(w[""])}" -- "$cur"))
        return
    fi
    case "$cmd" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [ "$cmd" = get ]; then
        COMPREPLY=($(compgen -W "functions quota" -- "$cur"))
    elif [[ " {" ".join(NAMED)} " == *" $cmd "* ]]; then
        COMPREPLY=($(compgen -W "$(_{prog}_functions)" -- "$cur"))
    fi
}}
complete -F _{prog} {prog}
"""
