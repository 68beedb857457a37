"""Approval of tool calls: an injected ``Approver`` decides whether a call may run.

Policy, first match wins (``decide`` is the pure function; tests call it as a table):

1. a config ``tools.deny`` rule matches           -> deny   (always wins, even over --yes)
2. ``--yes``                                       -> allow
3. a config ``tools.allow`` rule matches          -> allow
4. the user said "always" for this tool this session -> allow
5. the tool's default is ``confirm: never``       -> allow  (the call is still shown)
6. otherwise                                       -> ask the prompter; no prompter -> deny

Rules (``tools.allow`` / ``tools.deny`` in config), each either a tool name or a mapping::

    allow:
      - calculator                                  # any arguments
      - {tool: file_read, args: {path: "docs/**"}}  # every listed argument must match its glob
    deny:
      - web_fetch
      - {tool: file_read, args: {path: "**/.env"}}

Tool names may use ``*`` globs. Argument globs: ``*`` stays inside one path segment, ``**``
crosses ``/``. Values are compared as text (non-strings as JSON). A path-like value is also
compared after normalising ``./`` and ``..``: an allow rule must match the value as written and
never matches a value with ``..`` segments; a deny rule matches the value as written or
normalised.

A tool's command argument (manifest ``command_arg``: the shell's ``command``) is matched command
by command, as ``shell_rules.py`` says: allow rules must each cover one simple command of the
line (and nothing in it may run other code), a deny rule matches any part.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Literal, Mapping, Protocol, Sequence

from ..messages import ToolCall
from ..ui.render import inert


@dataclass(frozen=True)
class Decision:
    """A prompter's answer (the terminal side); the approver turns it into a Verdict."""

    approved: bool
    reason: str | None = None
    """A denial's optional reason, typed by the user (sent to the model)."""
    remember: bool = False
    """"always for this tool this session"."""


VerdictKind = Literal["allow", "deny", "ask"]
VerdictSource = Literal["deny_rule", "yes", "allow_rule", "session", "manifest", "default",
                        "user", "no_terminal", "error"]


@dataclass(frozen=True)
class Verdict:
    """An approval decision as a value: what (allow/deny/ask), why (``source``, and the config
    ``rule`` when one matched) and a sentence for people (``reason``; a denial's is also sent to
    the model). UI text is made from the fields, never parsed back out of ``reason``."""

    decision: VerdictKind
    source: VerdictSource
    reason: str
    rule: Rule | None = None
    remember: bool = False

    @property
    def approved(self) -> bool:
        return self.decision == "allow"

    def as_json(self) -> dict[str, Any]:
        return {"decision": self.decision, "source": self.source, "reason": self.reason,
                "rule": self.rule.label if self.rule is not None else None}


class Prompter(Protocol):
    """The terminal side of approval (a /dev/tty prompt for `ask`, the REPL's own for `chat`)."""

    def confirm(self, tool_name: str, arguments: dict[str, Any], note: str = "",
                preview: str = "") -> Decision:
        """Show the tool name and full arguments (and ``note``: what the tool's source says
        of it, e.g. an MCP server's hints; ``preview``: the diff a file change would make,
        already inert); ask yes once / always this session (``remember=True``) / no with an
        optional reason. Ctrl-C or EOF answers no."""
        ...


class Approver(Protocol):
    def approve(self, call: ToolCall, arguments: dict[str, Any], confirm: str,
                note: str = "", command_arg: str | None = None,
                preview: Callable[[], str] | None = None) -> Verdict:
        """Decide on one validated call; ``confirm`` is the tool's effective default
        (``ask`` or ``never``); ``note`` is shown when the user is asked, never decides;
        ``command_arg``: the argument that holds a bash command (rules on it parse it);
        ``preview`` is called only when the user is asked (after the deny rules), and what it
        returns is shown; a ToolError from it propagates (the call cannot be made)."""
        ...


# --- rules ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    tool: str
    args: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    """Where it came from, e.g. ``tools.allow[1]``; used in reasons."""

    def matches(self, tool: str, arguments: Mapping[str, Any], *, allow: bool) -> bool:
        if not glob_match(self.tool, tool, segments=False):
            return False
        for key, pattern in self.args.items():
            if key not in arguments:
                return False
            raw = _as_text(arguments[key])
            if allow:
                if ".." in raw.replace("\\", "/").split("/") or not glob_match(pattern, raw):
                    return False
            elif not (glob_match(pattern, raw) or glob_match(pattern, _normalise(raw))):
                return False
        return True


def parse_rules(items: Sequence[Any], key: str, file: str | None = None) -> tuple[Rule, ...]:
    """Config rules -> Rules; a malformed rule is a ConfigError (never a silent allow)."""
    from ..errors import ConfigError

    rules = []
    for i, item in enumerate(items):
        label = f"{key}[{i}]"
        if isinstance(item, str) and item.strip():
            rules.append(Rule(item.strip(), {}, label))
            continue
        if not isinstance(item, dict):
            raise ConfigError("a rule is a tool name or {tool: NAME, args: {ARG: GLOB}}",
                              file=file, key=label)
        unknown = set(item) - {"tool", "args"}
        if unknown:
            raise ConfigError(f"unknown rule field(s) {', '.join(sorted(map(str, unknown)))}; "
                              "use tool and args", file=file, key=label)
        tool = item.get("tool")
        if not isinstance(tool, str) or not tool.strip():
            raise ConfigError("the rule needs 'tool: NAME'", file=file, key=f"{label}.tool")
        args = item.get("args") or {}
        if not isinstance(args, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float, bool))
                for k, v in args.items()):
            raise ConfigError("'args' must map argument names to glob patterns (text)",
                              file=file, key=f"{label}.args")
        rules.append(Rule(tool.strip(), {k: _as_text(v) for k, v in args.items()}, label))
    return tuple(rules)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _normalise(value: str) -> str:
    v = value.replace("\\", "/")
    return posixpath.normpath(v) if v else v


def glob_match(pattern: str, text: str, segments: bool = True) -> bool:
    return _glob_regex(pattern, segments).match(text) is not None


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str, segments: bool) -> re.Pattern[str]:
    """``*`` within a segment, ``**`` across ``/`` (when ``segments``; else ``*`` is anything)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i) and segments:
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*" if segments else ".*")
        elif c == "?":
            out.append("[^/]" if segments else ".")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


# --- the pure decision ----------------------------------------------------------------------------

def decide(tool: str, arguments: Mapping[str, Any], *, confirm: str, yes: bool,
           allow: Sequence[Rule] = (), deny: Sequence[Rule] = (),
           grants: frozenset[str] | set[str] = frozenset(), command_arg: str | None = None,
           cwd: str = ".") -> Verdict:
    """The whole policy, without I/O (but for resolving redirection targets under ``cwd``).
    ``command_arg``: the argument holding a bash command, matched command by command."""
    from .shell_rules import CommandLine

    commands = CommandLine(arguments, command_arg, cwd)
    for rule in deny:
        if rule.matches(tool, arguments, allow=False) or commands.denied_by(rule, tool):
            return Verdict("deny", "deny_rule",
                           f"denied by config rule {rule.label} ({_describe(rule)})", rule)
    if yes:
        return Verdict("allow", "yes", "approved by --yes")
    by_command = [r for r in allow if commands.aware(r)]
    for rule in allow:
        if rule not in by_command and rule.matches(tool, arguments, allow=True):
            return Verdict("allow", "allow_rule",
                           f"allowed by config rule {rule.label} ({_describe(rule)})", rule)
    used = commands.allowed_by(by_command, tool) if by_command else None
    if used:
        labels = ", ".join(f"{r.label} ({_describe(r)})" for r in used)
        return Verdict("allow", "allow_rule",
                       f"allowed by config rule{'s' * (len(used) > 1)} {labels}", used[0])
    if tool in grants:
        return Verdict("allow", "session", "allowed for this session")
    if confirm == "never":
        return Verdict("allow", "manifest",
                       "runs without asking (the tool's default: confirm never)")
    return Verdict("ask", "default", "needs approval")


_LABELS = {"deny_rule": "denied by config", "yes": "allowed (--yes)",
           "allow_rule": "allowed by config", "session": "always (this session)",
           "manifest": "runs without asking", "default": "asks"}


def policy_summary(tool: str, confirm: str, *, yes: bool, allow: Sequence[Rule] = (),
                   deny: Sequence[Rule] = (), grants: frozenset[str] | set[str] = frozenset()
                   ) -> str:
    """How calls to ``tool`` are decided, for /tools: the verdict for any arguments, then every
    rule that depends on the arguments (e.g. ``asks; allowed if path=docs/**``)."""
    whole = [r for r in deny if not r.args], [r for r in allow if not r.args]
    base = decide(tool, {}, confirm=confirm, yes=yes, deny=whole[0], allow=whole[1],
                  grants=grants)
    parts = [_LABELS.get(base.source, base.decision)]
    if base.source != "deny_rule":
        for rule in deny:
            if rule.args and glob_match(rule.tool, tool, segments=False):
                parts.append(f"denied if {_args_text(rule)}")
        if base.decision == "ask":
            for rule in allow:
                if rule.args and glob_match(rule.tool, tool, segments=False):
                    parts.append(f"allowed if {_args_text(rule)}")
    return "; ".join(parts)


def _args_text(rule: Rule) -> str:
    return " ".join(f"{k}={v}" for k, v in rule.args.items())


def _describe(rule: Rule) -> str:
    if not rule.args:
        return rule.tool
    return rule.tool + " " + _args_text(rule)


NO_TERMINAL = ("denied: there is no terminal to ask for approval; rerun with --yes or allow "
               "the tool in config (tools.allow)")


class PolicyApprover:
    """The policy above plus a prompter for the ``ask`` case; remembers session grants."""

    def __init__(self, *, allow: Sequence[Rule] = (), deny: Sequence[Rule] = (),
                 yes: bool = False, prompter: Prompter | None = None) -> None:
        self.allow = tuple(allow)
        self.deny = tuple(deny)
        self.yes = yes
        self.prompter = prompter
        self.grants: set[str] = set()

    def approve(self, call: ToolCall, arguments: dict[str, Any], confirm: str,
                note: str = "", command_arg: str | None = None,
                preview: Callable[[], str] | None = None) -> Verdict:
        import os

        try:
            cwd = os.getcwd()
        except OSError:
            cwd = "/nonexistent"  # no folder: every redirection is outside it
        verdict = decide(call.name, arguments, confirm=confirm, yes=self.yes,
                         allow=self.allow, deny=self.deny, grants=self.grants,
                         command_arg=command_arg, cwd=cwd)
        if verdict.decision != "ask":
            return verdict
        if self.prompter is None:
            return Verdict("deny", "no_terminal", NO_TERMINAL)
        extra = {"preview": preview()} if preview is not None else {}  # may raise ToolError
        try:
            answer = self.prompter.confirm(call.name, arguments, note=note, **extra)
        except (KeyboardInterrupt, EOFError):
            answer = Decision(False, None)
        if answer.approved:
            if answer.remember:
                self.grants.add(call.name)
            return Verdict("allow", "user", "approved by the user", remember=answer.remember)
        text = (answer.reason or "").strip()
        return Verdict("deny", "user",
                       f"denied by the user: {text}" if text else "denied by the user")


def build_approver(settings: Any, *, yes: bool, prompter: Prompter | None) -> PolicyApprover:
    """The approver for a run: config rules (checked here: ConfigError names the rule), --yes,
    and the prompter (None when there is no terminal: then ``ask`` means deny)."""
    file = str(settings.config_file) if getattr(settings, "config_file", None) else None
    return PolicyApprover(allow=parse_rules(settings.tools.allow, "tools.allow", file),
                          deny=parse_rules(settings.tools.deny, "tools.deny", file),
                          yes=yes, prompter=prompter)


# --- the terminal prompt --------------------------------------------------------------------------
# One behaviour for `ask`'s prompt and the REPL's: the answer is typed, then Enter. y / yes runs
# the call once, a / always allows the tool for the session, n / no or Enter alone denies it
# (then an optional reason); anything else asks again; Ctrl-C or end of input deny. Keys typed
# before the question appears are discarded first, so a key meant for the next message (a "y"
# in "yes, and...", an "a" in "anyway") can never answer it.

REASON_QUESTION = "reason for the model (optional, Enter to skip): "
ASK_AGAIN = "please answer y, a or n, then Enter"
_ANSWERS = {"y": "y", "yes": "y", "a": "a", "always": "a", "n": "n", "no": "n", "": "n"}


def approval_question(tool_name: str) -> str:
    return (f"run it? [y] yes once  [a] always {inert(tool_name)} this session  "
            "[n] no (Enter = no): ")


def parse_answer(text: str) -> str | None:
    """``y``, ``a`` or ``n`` for a typed answer (Enter alone is ``n``); None: ask again."""
    return _ANSWERS.get(text.strip().lower())


def discard_typeahead(fd: int | None) -> None:
    """Drop what was typed on terminal ``fd`` before the question was asked (not a terminal:
    nothing, since what a pipe already holds was meant as input)."""
    if fd is None:
        return
    try:
        import termios

        if os.isatty(fd):
            termios.tcflush(fd, termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass


def stream_fd(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def format_call(tool_name: str, arguments: Mapping[str, Any]) -> str:
    """Tool name + full arguments as pretty JSON, every string made inert."""
    body = json.dumps(arguments, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    # json already escapes C0 controls inside strings; escape the rest (C1, bidi, DEL, ...)
    return f"tool call: {inert(tool_name)}\narguments:\n{inert(body)}"


class TerminalPrompter:
    """Asks on a text stream pair (stdin/stderr, or /dev/tty): y / a / n then Enter (+ an
    optional reason), as described above."""

    def __init__(self, input_stream: IO[str], output_stream: IO[str], *,
                 owns_streams: bool = False) -> None:
        self.input = input_stream
        self.output = output_stream
        self._owns = owns_streams

    def _say(self, text: str) -> None:
        self.output.write(text)
        self.output.flush()

    def _read(self) -> str | None:
        """The line typed, or None at end of input: a line without Enter (Ctrl-D after typing)
        is no answer either."""
        line = self.input.readline()
        return line.strip() if line.endswith("\n") else None

    def confirm(self, tool_name: str, arguments: dict[str, Any], note: str = "",
                preview: str = "") -> Decision:
        try:
            discard_typeahead(stream_fd(self.input))
            self._say("\n" + format_call(tool_name, arguments) + "\n")
            if note:
                self._say(inert(note) + "\n")
            if preview:
                from ..ui.diff_view import as_ansi

                self._say(as_ansi(preview, stream=self.output) + "\n")
            for _ in range(5):
                self._say(approval_question(tool_name))
                answer = self._read()
                if answer is None:
                    self._say("\n")
                    return Decision(False, None)
                choice = parse_answer(answer)
                if choice == "y":
                    return Decision(True)
                if choice == "a":
                    return Decision(True, remember=True)
                if choice == "n":
                    self._say(REASON_QUESTION)
                    reason = self._read()
                    return Decision(False, reason or None)
                self._say(ASK_AGAIN + "\n")
            return Decision(False, None)
        except (KeyboardInterrupt, EOFError):
            try:
                self._say("\n")
            except Exception:  # noqa: BLE001
                pass
            return Decision(False, None)

    def close(self) -> None:
        """Close the streams this prompter opened (never sys.stdin/sys.stderr)."""
        if self._owns:
            for s in (self.input, self.output):
                if s not in (sys.stdin, sys.stderr, sys.stdout):
                    try:
                        s.close()
                    except OSError:
                        pass


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):
        return False


def open_tty_prompter(stdin: IO[str] | None = None,
                      tty_path: str = "/dev/tty") -> TerminalPrompter | None:
    """For `agentcli ask`: stdin if it is a terminal (prompts on stderr); else /dev/tty if it
    can be opened; else None (the approver then denies what would need a prompt)."""
    stdin = sys.stdin if stdin is None else stdin
    try:
        if stdin is not None and stdin.isatty():
            if _isatty(sys.stderr):
                return TerminalPrompter(stdin, sys.stderr)
            try:  # stderr redirected (2>log): the question must still reach the user
                return TerminalPrompter(stdin, open(tty_path, "w", encoding="utf-8"),  # noqa: SIM115
                                        owns_streams=True)
            except OSError:
                return TerminalPrompter(stdin, sys.stderr)
    except (ValueError, OSError):
        pass
    try:  # a terminal is not seekable: one stream each way ("r+" would refuse it)
        tty_in = open(tty_path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return None
    try:
        if not tty_in.isatty():
            tty_in.close()
            return None
        tty_out = open(tty_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
    except (ValueError, OSError):
        tty_in.close()
        return None
    return TerminalPrompter(tty_in, tty_out, owns_streams=True)
