"""nsnet completion: bash, zsh and fish completion scripts, generated from the CLI's parser.

The scripts are built from `cli.build_parser()` every time they are printed,
so they always list the commands and options nsnet has: subcommands with
their help, each command's options (and which of them take a value), file
completion where a topology or plan file goes, the choices of options and
arguments that have them, and for `nsnet exec` the namespaces declared in
the topology file (asked from `nsnet completion --list-namespaces FILE`,
one short process per TAB) then command names.

What completes how is read from each argument: a positional `file`/`files`
or a value whose metavar is FILE or PLAN completes file names, `namespace`
completes namespace names, `argparse.REMAINDER` completes a command line,
`choices` (or a `{a,b}` metavar) complete those words.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")  # also the parser's choices in main.py (test_completion checks they agree)

_WORD = re.compile(r"[A-Za-z0-9_.,:=+/-]+")
_FILE_METAVARS = {"FILE", "PLAN", "TOPOLOGY"}


@dataclass(frozen=True)
class Arg:
    """How one argument completes: files, namespace, command, choices or nothing."""

    kind: str
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Option:
    strings: tuple[str, ...]
    takes_value: bool
    value: Arg
    help: str


@dataclass
class Command:
    name: str
    help: str
    options: list[Option] = field(default_factory=list)
    positionals: list[Arg] = field(default_factory=list)  # one per index; the last may repeat
    repeat_last: bool = False  # the last positional takes any number of words
    rest_at: int | None = None  # a command line (REMAINDER) starts after this many positionals


def _choices_of(action: argparse.Action) -> tuple[str, ...]:
    if action.choices:
        return tuple(str(c) for c in action.choices if _WORD.fullmatch(str(c)))
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    found = re.fullmatch(r"\{([^{}]+)\}", metavar or "")
    return tuple(c for c in found.group(1).split(",") if _WORD.fullmatch(c)) if found else ()


def _kind(action: argparse.Action) -> Arg:
    choices = _choices_of(action)
    help_text = _help(action)
    if choices:
        return Arg("choices", choices, help_text)
    if action.nargs == argparse.REMAINDER:
        return Arg("command", help=help_text)
    if action.dest == "namespace":
        return Arg("namespace", help=help_text)
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if action.dest in ("file", "files") or metavar in _FILE_METAVARS:
        return Arg("file", help=help_text)
    return Arg("none", help=help_text)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        try:
            text = text % {"default": action.default, "prog": "nsnet"}
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split())


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        strings = tuple(s for s in action.option_strings if _WORD.fullmatch(s))
        takes_value = action.nargs != 0
        found.append(Option(strings, takes_value, _kind(action) if takes_value else Arg("none"), _help(action)))
    return found


def commands(parser: argparse.ArgumentParser) -> tuple[list[Option], list[Command]]:
    """The global options and every subcommand, read from the parser."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: _help(a) for a in sub._choices_actions}
    found = []
    for name, p in sub.choices.items():
        if not _WORD.fullmatch(name):
            continue
        cmd = Command(name, helps.get(name, ""), _options(p))
        for action in p._actions:
            if action.option_strings or action.help == argparse.SUPPRESS:
                continue
            if action.nargs == argparse.REMAINDER:
                cmd.rest_at = len(cmd.positionals)
                break
            cmd.positionals.append(_kind(action))
            if action.nargs in ("*", "+"):
                cmd.repeat_last = True
                break
        found.append(cmd)
    return _options(parser), found


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r}")
    global_options, cmds = commands(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](global_options, cmds)


def _value_options(cmd: Command) -> list[str]:
    return [s for o in cmd.options if o.takes_value for s in o.strings]


# bash


def _bash_reply(arg: Arg) -> str:
    if arg.kind == "file":
        return "_nsnet_files"
    if arg.kind == "namespace":
        return 'COMPREPLY=($(compgen -W "$(_nsnet_namespaces)" -- "$cur"))'
    if arg.kind == "choices":
        return f'COMPREPLY=($(compgen -W "{" ".join(arg.choices)}" -- "$cur"))'
    if arg.kind == "command":
        return 'COMPREPLY=($(compgen -c -- "$cur"))'
    return ":"


def _bash(global_options: list[Option], cmds: list[Command]) -> str:
    names = " ".join(c.name for c in cmds)
    globals_ = " ".join(s for o in global_options for s in o.strings)
    value_cases = [f'"{c.name} {s}"' for c in cmds for s in _value_options(c)]
    rest = "\n".join(f"                    {c.name}) rest_at={c.rest_at} ;;" for c in cmds if c.rest_at is not None)
    branches = []
    for c in cmds:
        value_branches = "\n".join(
            f"                {'|'.join(o.strings)}) {_bash_reply(o.value)}; return 0 ;;" for o in c.options if o.takes_value and o.strings
        )
        positional = []
        for i, arg in enumerate(c.positionals):
            last = i == len(c.positionals) - 1 and c.repeat_last
            positional.append(f"                {'*' if last else i}) {_bash_reply(arg)} ;;")
        options = " ".join(s for o in c.options for s in o.strings)
        branches.append(f"""\
        {c.name})
            case $prev in
{value_branches or "                --) ;;"}
            esac
            if [[ -z $dd && $cur == -* ]]; then
                COMPREPLY=($(compgen -W "{options}" -- "$cur"))
                return 0
            fi
            case $npos in
{chr(10).join(positional) or "                *) ;;"}
            esac
            ;;""")
    return f"""\
# bash completion for nsnet: generated by `nsnet completion bash` from its parser.
# Install: nsnet completion bash > /etc/bash_completion.d/nsnet
#      or: source <(nsnet completion bash)   (in ~/.bashrc)

_nsnet_files() {{
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}}

_nsnet_namespaces() {{
    # the namespaces declared in the topology file (-f FILE, $NSNET_FILE or ./topology.yaml)
    local file=${{NSNET_FILE:-topology.yaml}} j
    for ((j = 1; j < COMP_CWORD; j++)); do
        case ${{COMP_WORDS[j]}} in
            -f|--file) file=${{COMP_WORDS[j+1]}} ;;
            --file=*) file=${{COMP_WORDS[j]#--file=}} ;;
        esac
    done
    "${{COMP_WORDS[0]}}" completion --list-namespaces "$file" 2>/dev/null
}}

_nsnet() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local cmd= w i npos=0 dd= rest_at=-1 inrest= nrest=0 skipped=
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ -z $cmd ]]; then
            if [[ $w != -* ]]; then
                cmd=$w
                case $cmd in
{rest or "                    --) ;;"}
                esac
            fi
            continue
        fi
        if [[ -n $inrest ]]; then
            if [[ $nrest -eq 0 && -z $skipped && $w == -- ]]; then
                skipped=1
            else
                nrest=$((nrest + 1))
            fi
            continue
        fi
        if [[ -n $dd || $w != -* ]]; then
            npos=$((npos + 1))
        elif [[ $w == -- ]]; then
            dd=1
        else
            case "$cmd $w" in
                {"|".join(value_cases) or '"-- --"'}) i=$((i + 1)) ;;
            esac
        fi
        if ((rest_at >= 0 && npos >= rest_at)); then
            inrest=1
        fi
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "{globals_}" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{names}" -- "$cur"))
        fi
        return 0
    fi
    if [[ -n $inrest ]]; then
        if ((nrest == 0)); then
            COMPREPLY=($(compgen -c -- "$cur"))
        else
            _nsnet_files
        fi
        return 0
    fi
    case $cmd in
{chr(10).join(branches)}
    esac
    return 0
}}

complete -F _nsnet nsnet
"""


# zsh


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_desc(text: str) -> str:
    return re.sub(r"([\\\[\]:])", r"\\\1", text)


def _zsh_action(arg: Arg) -> str:
    if arg.kind == "file":
        return "_files"
    if arg.kind == "namespace":
        return "_nsnet_namespaces"
    if arg.kind == "choices":
        return "(" + " ".join(arg.choices) + ")"
    if arg.kind == "command":
        return "_normal"
    return " "


def _zsh_specs(cmd: Command) -> list[str]:
    specs = []
    for option in cmd.options:
        exclusive = "(" + " ".join(option.strings) + ")" if len(option.strings) > 1 else ""
        for s in option.strings:
            if option.takes_value:
                suffix = "=" if s.startswith("--") else "+"
                message = _zsh_desc(option.value.kind if option.value.kind != "none" else "value")
                specs.append(f"{exclusive}{s}{suffix}[{_zsh_desc(option.help)}]:{message}:{_zsh_action(option.value)}")
            else:
                specs.append(f"{exclusive}{s}[{_zsh_desc(option.help)}]")
    for i, arg in enumerate(cmd.positionals):
        label = _zsh_desc(arg.kind if arg.kind != "none" else "argument")
        if i == len(cmd.positionals) - 1 and cmd.repeat_last:
            specs.append(f"*:{label}:{_zsh_action(arg)}")
        else:
            specs.append(f"{i + 1}:{label}:{_zsh_action(arg)}")
    if cmd.rest_at is not None:
        specs.append("*::command:_normal")
    return specs


def _zsh(global_options: list[Option], cmds: list[Command]) -> str:
    described = "\n".join(f"    {_zsh_quote(c.name + ':' + c.help)}" for c in cmds)
    top = Command("nsnet", "", global_options)
    top_specs = " \\\n    ".join(_zsh_quote(s) for s in _zsh_specs(top))
    branches = []
    for c in cmds:
        specs = " \\\n            ".join(_zsh_quote(s) for s in _zsh_specs(c))
        branches.append(f"""\
        ({c.name})
          _arguments -S \\
            {specs} && ret=0
          ;;""")
    return f"""\
#compdef nsnet
# zsh completion for nsnet: generated by `nsnet completion zsh` from its parser.
# Install: nsnet completion zsh > "${{fpath[1]}}/_nsnet"   (then compinit)

_nsnet_commands() {{
  local -a commands
  commands=(
{described}
  )
  _describe -t commands 'nsnet command' commands
}}

_nsnet_namespaces() {{
  # the namespaces declared in the topology file (-f FILE, $NSNET_FILE or ./topology.yaml)
  local file=${{opt_args[-f]:-${{opt_args[--file]:-${{NSNET_FILE:-topology.yaml}}}}}}
  local -a names
  names=(${{(f)"$($_nsnet_prog completion --list-namespaces $file 2>/dev/null)"}})
  _describe -t namespaces 'namespace' names
}}

_nsnet() {{
  local _nsnet_prog=$words[1]
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  _arguments -C \\
    {top_specs} \\
    '1:command:_nsnet_commands' \\
    '*:: :->args' && ret=0
  case $state in
    (args)
      curcontext=${{curcontext%:*:*}}:nsnet-$words[1]:
      case $words[1] in
{chr(10).join(branches)}
      esac
      ;;
  esac
  return ret
}}

_nsnet "$@"
"""


# fish


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(arg: Arg) -> str:
    if arg.kind == "file":
        return "-r -F"
    if arg.kind == "choices":
        return f"-x -a {_fish_quote(' '.join(arg.choices))}"
    if arg.kind == "namespace":
        return "-x -a '(__nsnet_namespaces)'"
    return "-x"


def _fish(global_options: list[Option], cmds: list[Command]) -> str:
    value_pairs = " ".join(_fish_quote(f"{c.name} {s}") for c in cmds for s in _value_options(c))
    rest = "\n".join(f"                    case {c.name}\n                        set rest_at {c.rest_at}" for c in cmds if c.rest_at is not None)
    lines = []
    for option in global_options:
        flags = " ".join(f"-s {s[1:]}" if len(s) == 2 else f"-l {s[2:]}" for s in option.strings)
        lines.append(f"complete -c nsnet -n __nsnet_no_command {flags} -d {_fish_quote(option.help)}")
    for c in cmds:
        lines.append(f"complete -c nsnet -n __nsnet_no_command -a {c.name} -d {_fish_quote(c.help)}")
    for c in cmds:
        # a command line (exec's) takes the options typed after it as its own
        when = _fish_quote(f"__nsnet_is {c.name}" + (f" -lt {c.rest_at}" if c.rest_at is not None else ""))
        for option in c.options:
            flags = " ".join(f"-s {s[1:]}" if len(s) == 2 else f"-l {s[2:]}" for s in option.strings)
            value = f" {_fish_value(option.value)}" if option.takes_value else ""
            lines.append(f"complete -c nsnet -n {when} {flags}{value} -d {_fish_quote(option.help)}")
        for i, arg in enumerate(c.positionals):
            test = "-ge" if i == len(c.positionals) - 1 and c.repeat_last else "-eq"
            cond = _fish_quote(f"__nsnet_is {c.name} {test} {i}")
            if arg.kind == "file":
                lines.append(f"complete -c nsnet -n {cond} -F")
            elif arg.kind == "choices":
                lines.append(f"complete -c nsnet -n {cond} -a {_fish_quote(' '.join(arg.choices))}")
            elif arg.kind == "namespace":
                lines.append(f"complete -c nsnet -n {cond} -a '(__nsnet_namespaces)'")
        if c.rest_at is not None:
            first = _fish_quote(f"__nsnet_is {c.name} -eq {c.rest_at}")
            later = _fish_quote(f"__nsnet_is {c.name} -gt {c.rest_at}")
            lines.append(f"complete -c nsnet -n {first} -a '(__fish_complete_command)'")
            lines.append(f"complete -c nsnet -n {later} -F")
    return f"""\
# fish completion for nsnet: generated by `nsnet completion fish` from its parser.
# Install: nsnet completion fish > ~/.config/fish/completions/nsnet.fish

function __nsnet_words --description 'the nsnet subcommand, then the positional words typed after it'
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd
    set -l skip 0
    set -l dd 0
    set -l rest_at -1
    set -l npos 0
    for w in $tokens
        if test -z "$cmd"
            if not string match -q -- '-*' $w
                set cmd $w
                echo $cmd
                switch $cmd
{rest or "                    case '--'"}
                end
            end
            continue
        end
        if test $rest_at -ge 0 -a $npos -ge $rest_at
            if test $npos -eq $rest_at -a "$w" = --
                set rest_at -1
                set dd 1
                continue
            end
            set npos (math $npos + 1)
            echo $w
            continue
        end
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test $dd -eq 0
            if test "$w" = --
                set dd 1
                continue
            end
            if contains -- "$cmd $w" {value_pairs or "''"}
                set skip 1
                continue
            end
            if string match -q -- '-*' $w
                continue
            end
        end
        set npos (math $npos + 1)
        echo $w
    end
end

function __nsnet_no_command
    set -l words (__nsnet_words)
    not set -q words[1]
end

function __nsnet_is --argument-names want op n
    set -l words (__nsnet_words)
    set -q words[1]; or return 1
    test "$words[1]" = "$want"; or return 1
    test -z "$op"; and return 0
    test (math (count $words) - 1) $op $n
end

function __nsnet_namespaces --description 'the namespaces declared in the topology file'
    set -l tokens (commandline -opc)
    set -l file $NSNET_FILE
    test -n "$file"; or set file topology.yaml
    set -l i 1
    for w in $tokens
        set i (math $i + 1)
        switch $w
            case -f --file
                set -q tokens[$i]; and set file $tokens[$i]
            case '--file=*'
                set file (string replace -- --file= '' $w)
        end
    end
    $tokens[1] completion --list-namespaces $file 2>/dev/null
end

complete -c nsnet -f
{chr(10).join(lines)}
"""
