"""Approval: the pure decision table (every branch), rules, the approver, the terminal prompt."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from agentcli.toolrun.approval import (NO_TERMINAL, Decision, PolicyApprover, Rule, TerminalPrompter,
                               build_approver, decide, format_call, open_tty_prompter,
                               parse_rules, policy_summary)
from agentcli.config import ToolSettings, load_settings
from agentcli.errors import ConfigError
from agentcli.messages import ToolCall

ALLOW_DOCS = Rule("file_read", {"path": "docs/**"}, "tools.allow[0]")
ALLOW_CALC = Rule("calculator", {}, "tools.allow[1]")
DENY_WEB = Rule("web_fetch", {}, "tools.deny[0]")
DENY_ENV = Rule("file_read", {"path": "**/.env"}, "tools.deny[1]")

# (tool, args, confirm, yes, allow, deny, grants) -> verdict, words in the reason
TABLE = [
    # 1. deny rules always win
    ("web_fetch", {"url": "x"}, "ask", True, [], [DENY_WEB], set(), "deny", "tools.deny[0]"),
    ("web_fetch", {"url": "x"}, "never", False, [], [DENY_WEB], {"web_fetch"}, "deny", "deny"),
    ("file_read", {"path": "docs/.env"}, "ask", False, [ALLOW_DOCS], [DENY_ENV], set(), "deny",
     "tools.deny[1]"),
    ("file_read", {"path": ".env"}, "ask", True, [], [DENY_ENV], set(), "deny", "deny"),
    # 2. --yes approves everything else
    ("file_read", {"path": "/etc/passwd"}, "ask", True, [], [DENY_ENV], set(), "allow", "--yes"),
    ("web_fetch", {"url": "x"}, "ask", True, [], [], set(), "allow", "--yes"),
    # 3. allow rules, with and without argument patterns
    ("calculator", {"expression": "1"}, "ask", False, [ALLOW_CALC], [], set(), "allow",
     "tools.allow[1]"),
    ("file_read", {"path": "docs/a/b.md"}, "ask", False, [ALLOW_DOCS], [], set(), "allow",
     "tools.allow[0]"),
    ("file_read", {"path": "src/a.py"}, "ask", False, [ALLOW_DOCS], [], set(), "ask", "approval"),
    ("file_read", {"path": "docs/../secret"}, "ask", False, [ALLOW_DOCS], [], set(), "ask",
     "approval"),
    ("file_read", {"offset": 1}, "ask", False, [ALLOW_DOCS], [], set(), "ask", "approval"),
    # 4. session grants
    ("file_read", {"path": "x"}, "ask", False, [], [], {"file_read"}, "allow", "session"),
    ("web_fetch", {"url": "x"}, "ask", False, [], [], {"file_read"}, "ask", "approval"),
    # 5. the manifest default
    ("calculator", {"expression": "1"}, "never", False, [], [], set(), "allow", "confirm never"),
    # 6. otherwise ask
    ("file_read", {"path": "x"}, "ask", False, [], [], set(), "ask", "approval"),
]


@pytest.mark.parametrize("tool,args,confirm,yes,allow,deny,grants,verdict,words", TABLE)
def test_decision_table(tool, args, confirm, yes, allow, deny, grants, verdict, words):
    got = decide(tool, args, confirm=confirm, yes=yes, allow=allow, deny=deny,
                 grants=frozenset(grants))
    assert got.decision == verdict
    assert words in got.reason


@pytest.mark.parametrize("pattern,value,allow,matches", [
    ("docs/**", "docs/a.md", True, True),
    ("docs/**", "docs/a/b/c.md", True, True),
    ("docs/**", "docs2/a.md", True, False),
    ("docs/*", "docs/a/b.md", True, False),
    ("docs/**", "./docs/a.md", True, False),       # raw value must match too
    ("docs/**", "docs/../etc/passwd", True, False),  # '..' never allowed by an allow rule
    ("**/.env", ".env", False, True),
    ("**/.env", "a/b/.env", False, True),
    ("secret/**", "./secret/x", False, True),       # deny: normalised value counts
    ("secret/**", "docs/../secret/x", False, True),
    ("*.md", "README.md", True, True),
    ("*.md", "a/README.md", True, False),
    ("**/.env", "./.env", False, True),
])


def test_argument_globs(pattern, value, allow, matches):
    rule = Rule("file_read", {"path": pattern})
    assert rule.matches("file_read", {"path": value}, allow=allow) is matches


@pytest.mark.parametrize("url,allowed", [
    ("https://docs.python.org/3/library/json.html", True),
    ("https://docs.python.org.evil.com/x", False),
    ("https://docs.python.org/../x", False),
    ("http://docs.python.org/3/", False),
])
def test_url_allow_rule(url, allowed):
    rule = Rule("web_fetch", {"url": "https://docs.python.org/**"})
    assert rule.matches("web_fetch", {"url": url}, allow=True) is allowed


def test_tool_name_globs_and_non_string_args():
    assert Rule("web_*").matches("web_fetch", {}, allow=True)
    assert not Rule("web_*").matches("file_read", {}, allow=True)
    assert Rule("t", {"n": "3"}).matches("t", {"n": 3}, allow=True)


def test_parse_rules_syntax():
    rules = parse_rules(["calculator", {"tool": "file_read", "args": {"path": "docs/**"}}],
                        "tools.allow")
    assert rules == (Rule("calculator", {}, "tools.allow[0]"),
                     Rule("file_read", {"path": "docs/**"}, "tools.allow[1]"))


@pytest.mark.parametrize("bad,key", [
    ([12], "tools.allow[0]"),
    ([{"args": {"path": "x"}}], "tools.allow[0].tool"),
    ([{"tool": "x", "args": ["a"]}], "tools.allow[0].args"),
    ([{"tool": "x", "arg": {}}], "tools.allow[0]"),
    (["ok", {"tool": "x", "args": {"p": {"nested": 1}}}], "tools.allow[1].args"),
])
def test_malformed_rules_are_config_errors(bad, key):
    with pytest.raises(ConfigError) as e:
        parse_rules(bad, "tools.allow", "/x/config.yaml")
    assert key in e.value.message and "/x/config.yaml" in e.value.message


def test_malformed_config_rule_is_an_error_when_the_config_is_loaded(tmp_path):
    """One validation, at load, for every command (it used to wait for build_approver, so
    `config show` and `tools list` passed a broken rule silently)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  allow:\n    - {tool: file_read, args: nonsense}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "tools.allow[0].args" in e.value.message and str(cfg) in e.value.message
    broken = replace(load_settings(), tools=ToolSettings(allow=({"tool": "x", "args": 1},)))
    with pytest.raises(ConfigError):  # Settings made in code: still never a silent allow
        build_approver(broken, yes=False, prompter=None)


class FakePrompter:
    def __init__(self, *answers: Decision) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, dict]] = []

    def confirm(self, tool_name, arguments, note=""):
        self.asked.append((tool_name, arguments))
        return self.answers.pop(0)


def call(name: str = "file_read", args: dict | None = None) -> tuple[ToolCall, dict]:
    args = args if args is not None else {"path": "a.txt"}
    return ToolCall("c1", name, json.dumps(args)), args


def test_no_terminal_denies_and_says_why():
    approver = PolicyApprover(prompter=None)
    d = approver.approve(*call(), "ask")
    assert not d.approved and d.reason == NO_TERMINAL
    assert "--yes" in d.reason and "config" in d.reason
    assert approver.approve(*call("calculator", {"expression": "1"}), "never").approved


def test_yes_and_deny_wins_through_build_approver(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  deny: [web_fetch]\n  allow:\n"
                   "    - {tool: file_read, args: {path: 'docs/**'}}\n")
    s = load_settings(cfg)
    yes = build_approver(s, yes=True, prompter=None)
    assert yes.approve(*call("file_read", {"path": "/etc/passwd"}), "ask").approved
    web = yes.approve(*call("web_fetch", {"url": "http://x"}), "ask")
    assert not web.approved and "tools.deny[0]" in web.reason
    no_tty = build_approver(s, yes=False, prompter=None)
    assert no_tty.approve(*call("file_read", {"path": "docs/x.md"}), "ask").approved
    assert not no_tty.approve(*call("file_read", {"path": "src/x.py"}), "ask").approved


def test_prompt_answers_and_session_grant():
    p = FakePrompter(Decision(True), Decision(True, remember=True), Decision(False, "too risky"))
    approver = PolicyApprover(prompter=p)
    assert approver.approve(*call(), "ask").approved
    assert approver.grants == set()
    assert approver.approve(*call(), "ask").approved
    assert approver.grants == {"file_read"}
    assert approver.approve(*call(args={"path": "other"}), "ask").approved  # granted: no prompt
    assert len(p.asked) == 2
    d = approver.approve(*call("web_fetch", {"url": "u"}), "ask")
    assert not d.approved and d.reason == "denied by the user: too risky"


def test_denial_without_reason_and_interrupt():
    class Interrupting:
        def confirm(self, tool_name, arguments, note=""):
            raise KeyboardInterrupt

    assert PolicyApprover(prompter=FakePrompter(Decision(False))).approve(
        *call(), "ask").reason == "denied by the user"
    d = PolicyApprover(prompter=Interrupting()).approve(*call(), "ask")
    assert not d.approved


def prompt(answers: str, args: dict | None = None) -> tuple[Decision, str]:
    out = io.StringIO()
    d = TerminalPrompter(io.StringIO(answers), out).confirm("file_read",
                                                           args or {"path": "a.txt"})
    return d, out.getvalue()


@pytest.mark.parametrize("answers,approved,remember,reason", [
    ("y\n", True, False, None),
    ("yes\n", True, False, None),
    ("a\n", True, True, None),
    ("n\n\n", False, False, None),
    ("n\nnot that file\n", False, False, "not that file"),
    ("", False, False, None),              # EOF
    ("maybe\ny\n", True, False, None),     # asks again
    ("x\nx\nx\nx\nx\n", False, False, None),
])
def test_terminal_prompter_answers(answers, approved, remember, reason):
    d, shown = prompt(answers)
    assert (d.approved, d.remember, d.reason) == (approved, remember, reason)
    assert "file_read" in shown and '"path": "a.txt"' in shown


def test_terminal_prompter_ctrl_c_is_no():
    class CtrlC(io.StringIO):
        def readline(self, *a):
            raise KeyboardInterrupt

    d = TerminalPrompter(CtrlC(), io.StringIO()).confirm("t", {})
    assert not d.approved


def test_prompt_shows_everything_and_nothing_escapes():
    long_value = "A" * 5000
    hostile = {"path": "x\x1b]52;c;ZXZpbA==\x07\x1b[2J\r\u202eevil\x9b31m", "long": long_value}
    _, shown = prompt("y\n", hostile)
    assert long_value in shown, "nothing hidden"
    for bad in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert bad not in shown
    assert "\\u001b]52" in shown and "\\u202e" in shown
    assert "\\u001b" in format_call("t\x1b[31m", {})


def test_open_tty_prompter_without_a_terminal(tmp_path):
    class Piped(io.StringIO):
        def isatty(self):
            return False

    assert open_tty_prompter(Piped(""), tty_path=str(tmp_path / "no-tty")) is None
    regular = tmp_path / "file"
    regular.write_text("")
    assert open_tty_prompter(Piped(""), tty_path=str(regular)) is None  # opens, but no tty


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_open_tty_prompter_uses_a_terminal_stdin(monkeypatch, tmp_path):
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    p = open_tty_prompter(Tty("y\n"), tty_path=str(tmp_path / "no-tty"))
    assert p is not None and p.confirm("t", {"a": 1}).approved
    assert "tool call: t" in err.getvalue()
    p.close()
    assert not err.closed


def test_prompt_reaches_the_terminal_when_stderr_is_redirected(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # like 2>log
    fake_tty = tmp_path / "tty"
    p = open_tty_prompter(Tty("a\n"), tty_path=str(fake_tty))
    d = p.confirm("file_read", {"path": "x"})
    p.close()
    assert d.approved and d.remember
    assert "tool call: file_read" in fake_tty.read_text()


def test_config_example_rules_parse():
    s = load_settings()
    s = replace(s, tools=ToolSettings(allow=("calculator",), deny=({"tool": "web_fetch"},)))
    approver = build_approver(s, yes=False, prompter=None)
    assert approver.allow[0].tool == "calculator" and approver.deny[0].tool == "web_fetch"


# --- /tools: what the policy says about each tool, argument-scoped rules included ---------------

@pytest.mark.parametrize("tool,confirm,yes,allow,deny,grants,expected", [
    ("file_read", "ask", False, [], [], set(), "asks"),
    ("file_read", "ask", False, [ALLOW_DOCS], [DENY_ENV], set(),
     "asks; denied if path=**/.env; allowed if path=docs/**"),
    ("file_read", "ask", True, [ALLOW_DOCS], [DENY_ENV], set(),
     "allowed (--yes); denied if path=**/.env"),          # deny rules beat --yes: still shown
    ("file_read", "ask", False, [Rule("file_read", {}, "tools.allow[0]")], [DENY_ENV], set(),
     "allowed by config; denied if path=**/.env"),
    ("file_read", "ask", False, [], [DENY_ENV], {"file_read"},
     "always (this session); denied if path=**/.env"),
    ("web_fetch", "ask", True, [], [DENY_WEB], set(), "denied by config"),
    ("web_fetch", "ask", False, [], [Rule("web_*", {}, "tools.deny[0]")], set(),
     "denied by config"),
    ("calculator", "never", False, [ALLOW_DOCS], [DENY_ENV], set(), "runs without asking"),
    ("web_fetch", "ask", False, [ALLOW_DOCS], [DENY_ENV], set(), "asks"),  # others' rules: none
])
def test_policy_summary_is_honest_about_argument_rules(tool, confirm, yes, allow, deny, grants,
                                                        expected):
    assert policy_summary(tool, confirm, yes=yes, allow=allow, deny=deny,
                          grants=frozenset(grants)) == expected


def test_slash_tools_uses_the_approvers_real_policy(tmp_path):
    from types import SimpleNamespace

    from agentcli.ui.repl.slash import _approval_state

    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  allow:\n    - {tool: file_read, args: {path: 'docs/**'}}\n"
                   "  deny:\n    - {tool: file_read, args: {path: '**/.env'}}\n")
    approver = build_approver(load_settings(cfg), yes=False, prompter=FakePrompter())
    repl = SimpleNamespace(executor=SimpleNamespace(approver=approver))
    tool = SimpleNamespace(confirm="ask")
    assert _approval_state(repl, "file_read", tool) == \
        "asks; denied if path=**/.env; allowed if path=docs/**"
    approver.grants.add("file_read")
    assert _approval_state(repl, "file_read", tool) == \
        "always (this session); denied if path=**/.env"


@pytest.mark.parametrize("width", [120, 80])
def test_slash_tools_shows_the_approval_column_with_real_descriptions(tmp_path, width):
    """The built-ins' long descriptions used to squeeze the approval column to nothing."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from agentcli.toolrun.manifest import load_tools
    from agentcli.ui.repl.slash import _tools

    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  allow:\n    - {tool: file_read, args: {path: 'docs/**'}}\n"
                   "  deny:\n    - {tool: file_read, args: {path: '**/.env'}}\n")
    settings = load_settings(cfg)
    tools = load_tools(settings, warn=lambda line: None)
    out = io.StringIO()
    repl = SimpleNamespace(tools=tools, err=Console(file=out, width=width, force_terminal=False),
                           executor=SimpleNamespace(approver=build_approver(
                               settings, yes=False, prompter=FakePrompter())),
                           notice=pytest.fail, error=pytest.fail)
    _tools(repl, "")
    header, *rows = out.getvalue().splitlines()
    start, end = header.index("approval"), header.index("description")
    column = " ".join(" ".join(row[start:end] for row in rows).split())
    assert column == ("runs without asking asks asks; denied if path=**/.env; allowed if "
                      "path=docs/** asks asks asks")  # calculator, edit, file_read, shell, web_fetch, write


def test_the_prompt_shows_a_note_on_the_tool_inert():
    """An MCP server's hints reach the question as text; escapes in them stay inert."""
    out = io.StringIO()
    d = TerminalPrompter(io.StringIO("y\n"), out).confirm(
        "srv__rm", {}, note="the server says this tool is destructive\x1b]52;c;eA==\x07")
    shown = out.getvalue()
    assert d.approved and "the server says this tool is destructive" in shown
    assert "\x1b" not in shown and "\x07" not in shown
