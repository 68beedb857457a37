"""Command-aware approval rules: what a bash command line is made of, parsed by ``bashlex``.

``analyse(line, cwd)`` splits a command line into its simple commands (``git status``,
``rm -rf ~``): every one of them, nested ones included (in ``$( )``, backticks, ``<( )``,
subshells, functions, and the string of ``bash -c``/``eval``), for deny rules; and, for allow
rules, the top-level ones, with the reason an allow rule can never approve the line (or None):

- command or process substitution anywhere (``$(...)``, backticks, ``<(...)``, ``>(...)``);
- a parameter or arithmetic expansion in a word (``$HOME``, ``$'\\x3b'``), whose value is
  unknown when approving;
- a redirection to or from a file outside the working folder (``/dev/null`` aside), or one
  whose target has an expansion; a here-document that would expand ``$`` or backticks;
- ``VAR=value`` before a command (``LD_PRELOAD=... git status``) or alone;
- ``eval``, ``exec``, ``source``, ``.``, ``trap``, or a shell run with ``-c`` (a string run as
  code);
- compound commands and functions (``if``, ``for``, ``( )``, ``f() {}``);
- anything the parser cannot read (then nothing is approved by a rule: the user is asked).

The text of a simple command is its words after quote removal joined by spaces
(``git st"atus"`` is ``git status``), which is what the program receives.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

STRING_RUNNERS = {"eval", "exec", "source", ".", "trap", "builtin", "command", "coproc"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox"}
MAX_DEPTH = 4  # bash -c "bash -c '...'" nesting followed for deny rules


@dataclass(frozen=True)
class Analysis:
    commands: tuple[str, ...]
    """The text of every simple command, nested ones included (for deny rules)."""
    top: tuple[str, ...]
    """The simple commands an allow rule must each match."""
    problem: str | None
    """Why no allow rule may approve this line (None: it may, command by command)."""


class _Walk:
    def __init__(self, line: str, cwd: str, depth: int) -> None:
        self.line, self.cwd, self.depth = line, cwd, depth
        self.commands: list[str] = []
        self.top: list[str] = []
        self.problem: str | None = None

    def flag(self, why: str) -> None:
        if self.problem is None:
            self.problem = why

    def node(self, node: Any, top: bool) -> None:
        kind = node.kind
        if kind == "command":
            self.command(node, top)
        elif kind in ("list", "pipeline"):
            for part in node.parts:
                self.node(part, top)
        elif kind in ("operator", "pipe", "reservedword"):
            return
        elif kind == "compound":
            self.flag("a compound command (if, for, while, subshell, braces)")
            for part in getattr(node, "list", []):
                self.node(part, False)
        elif kind == "function":
            self.flag("a function definition")
            for part in node.parts:
                self.node(part, False)
        elif kind in ("if", "for", "while", "until"):
            for part in node.parts:
                self.node(part, False)
        else:  # word, assignment, redirect outside a command: unexpected here
            self.flag(f"an unexpected construct ({kind})")

    def command(self, node: Any, top: bool) -> None:
        words: list[str] = []
        for part in node.parts:
            if part.kind == "assignment":
                self.flag("a variable assignment (VAR=value) before or instead of a command")
                self.expansions(part)
            elif part.kind == "word":
                self.expansions(part)
                words.append(part.word)
            elif part.kind == "redirect":
                self.redirect(part)
            else:
                self.node(part, False)
        text = " ".join(words)
        if text:
            self.commands.append(text)
            if top:
                self.top.append(text)
        elif top:
            self.flag("no command, only assignments or redirections")
        if words:
            self.runner(words)

    def runner(self, words: list[str]) -> None:
        name = os.path.basename(words[0])
        runs_string = name in STRING_RUNNERS or (
            name in SHELLS and any(w.startswith("-") and "c" in w.lstrip("-") and
                                   not w.startswith("--") for w in words[1:]))
        if not runs_string:
            return
        self.flag(f"'{name}' runs a string as a command")
        if self.depth < MAX_DEPTH:  # what the string would run still counts for deny rules
            for word in words[1:]:
                if not word.startswith("-"):
                    inner = analyse(word, self.cwd, self.depth + 1)
                    self.commands.extend(inner.commands)

    def expansions(self, word: Any) -> None:
        for part in getattr(word, "parts", None) or ():
            if part.kind in ("commandsubstitution", "processsubstitution"):
                self.flag("a command or process substitution ($( ), backticks, <( ))")
                self.node(part.command, False)
            elif part.kind == "parameter":
                self.flag("a parameter expansion ($NAME), whose value is unknown here")
            elif part.kind != "tilde":
                self.flag(f"an expansion ({part.kind})")

    def redirect(self, node: Any) -> None:
        target = node.output
        heredoc = getattr(node, "heredoc", None)
        if heredoc is not None:
            body = getattr(heredoc, "value", "")
            if ("$" in body or "`" in body) and not _quoted(target, self.line):
                self.flag("a here-document that expands $ or backticks")
            return
        if isinstance(target, int):  # 2>&1, >&2
            return
        self.expansions(target)
        path = getattr(target, "word", "")
        if path.isdigit() or path == "-":  # >&1 written with a word
            return
        full = os.path.realpath(os.path.join(self.cwd, os.path.expanduser(path)))
        cwd = os.path.realpath(self.cwd)
        if full != "/dev/null" and not (full == cwd or full.startswith(cwd.rstrip("/") + "/")):
            self.flag(f"a redirection to a file outside the working folder ({path})")


def _quoted(word: Any, line: str) -> bool:
    """The here-document's delimiter was quoted (then its body is taken literally)."""
    pos = getattr(word, "pos", None)
    raw = line[pos[0]:pos[1]] if pos else ""
    return any(q in raw for q in ("'", '"', "\\"))


def match(pattern: str, text: str) -> bool:
    """A command pattern: ``*`` matches anything (spaces and ``/`` too), ``?`` one character."""
    return _regex(pattern).match(text) is not None


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z", re.DOTALL)


def any_part_matches(line: str, cwd: str, pattern: str) -> bool:
    """A deny rule: the line as written, or any simple command in it, nested ones included."""
    return match(pattern, line) or any(match(pattern, c) for c in analyse(line, cwd).commands)


def each_command_matches(line: str, cwd: str, patterns: Sequence[str]) -> list[int] | None:
    """Allow rules: for each top-level simple command, the index of the first pattern it
    matches; None when the line has a problem or a command matches none."""
    found = analyse(line, cwd)
    if found.problem or not patterns:
        return None
    picks = []
    for command in found.top:
        index = next((i for i, p in enumerate(patterns) if match(p, command)), None)
        if index is None:
            return None
        picks.append(index)
    return picks


@functools.lru_cache(maxsize=64)
def analyse(line: str, cwd: str, depth: int = 0) -> Analysis:
    import bashlex

    walk = _Walk(line, cwd, depth)
    try:
        trees = bashlex.parse(line)
    except Exception as e:  # noqa: BLE001 - bashlex raises several kinds; any is "unreadable"
        return Analysis((), (), f"the command could not be parsed ({type(e).__name__})")
    for tree in trees:
        walk.node(tree, True)
    if not walk.top:
        walk.flag("no command")
    return Analysis(tuple(walk.commands), tuple(walk.top), walk.problem)


class CommandLine:
    """The command argument of one call, for ``approval.decide``: rules (``approval.Rule``)
    whose args name it are matched command by command; the line is parsed once, if at all."""

    def __init__(self, arguments: Mapping[str, Any], key: str | None, cwd: str) -> None:
        value = arguments.get(key) if key else None
        self.key, self.cwd, self.line = key or "", cwd, value if isinstance(value, str) else None
        self.others = {k: v for k, v in arguments.items() if k != key}

    def aware(self, rule: Any) -> bool:
        return self.line is not None and self.key in rule.args

    def _rest(self, rule: Any, tool: str, allow: bool) -> bool:
        """The rule names this tool and its other arguments match."""
        rest = dataclasses.replace(rule, args={k: v for k, v in rule.args.items()
                                               if k != self.key})
        return bool(rest.matches(tool, self.others, allow=allow))

    def denied_by(self, rule: Any, tool: str) -> bool:
        return (self.aware(rule) and self._rest(rule, tool, allow=False)
                and any_part_matches(self.line or "", self.cwd, rule.args[self.key]))

    def allowed_by(self, rules: Sequence[Any], tool: str) -> list[Any] | None:
        """The rules that together approve the line (one per simple command), or None."""
        eligible = [r for r in rules if self._rest(r, tool, allow=True)]
        picks = each_command_matches(self.line or "", self.cwd,
                                     [r.args[self.key] for r in eligible])
        return [eligible[i] for i in dict.fromkeys(picks)] if picks else None
