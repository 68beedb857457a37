"""Command-aware allow/deny rules for the shell: every way to smuggle a second command past an
allow rule asks; deny rules find the part that matches, wherever it hides."""

from __future__ import annotations

import pytest

from agentcli.toolrun.approval import PolicyApprover, decide, parse_rules
from agentcli.toolrun.executor import Executor
from agentcli.toolrun.manifest import builtin_tools_dir, tool_from_manifest
from agentcli.messages import ToolCall

ALLOW = parse_rules([{"tool": "shell", "args": {"command": "git status*"}},
                     {"tool": "shell", "args": {"command": "git diff*"}},
                     {"tool": "shell", "args": {"command": "ls*"}}], "tools.allow")
DENY = parse_rules([{"tool": "shell", "args": {"command": "rm *"}}], "tools.deny")


def verdict(command: str, cwd: str = "/work/project", allow=ALLOW, deny=()):
    return decide("shell", {"command": command}, confirm="ask", yes=False, allow=allow,
                  deny=deny, command_arg="command", cwd=cwd)


@pytest.mark.parametrize("command", [
    "git status",
    "git status --short",
    "git st\"atus\"",                    # quote removal: git receives "status"
    "git status && git diff",            # each part matches a rule
    "git status | ls",
    "git status > out.txt",              # inside the working folder
    "git status > /dev/null 2>&1",
    "ls ~",                              # a tilde is not code
    "git status &",
])
def test_lines_made_only_of_allowed_commands_are_approved(command):
    v = verdict(command)
    assert v.decision == "allow" and v.source == "allow_rule", (command, v.reason)


@pytest.mark.parametrize("command", [
    "git status; rm -rf ~",              # ;
    "git status && rm -rf ~",            # &&
    "git status || rm -rf ~",            # ||
    "git status | sh",                   # |
    "git status $(rm -rf ~)",            # command substitution
    "git status `rm -rf ~`",             # backticks
    "git status\nrm -rf ~",              # newline
    "git status > ~/.bashrc",            # redirection out of the working folder
    "git status > ../outside",
    "git status >> /etc/passwd",
    "git status < /etc/shadow",
    "git status > $HOME/x",              # a target whose value is unknown
    "ls <(rm -rf ~)",                    # process substitution
    "ls > >(rm -rf ~)",
    "LD_PRELOAD=/tmp/evil.so git status",  # env-prefix tricks
    "GIT_DIR=/ git status",
    "FOO=bar",
    "env git status",
    "git status; bash -c 'rm -rf ~'",
    "bash -c 'git status'",              # a string run as code
    "sh -lc 'git status'",
    "eval git status",
    "exec git status",
    "source ./script.sh",
    ". ./script.sh",
    "ls $'\\x3b' rm",                    # quoting tricks the parser cannot see through
    "ls \"$(rm -rf ~)\"",
    "git status ${IFS}x",
    "(git status)",                      # subshells, compounds, functions
    "{ git status; }",
    "if true; then git status; fi",
    "f() { rm -rf ~; }; git status",
    "cat <<EOF\n$(rm -rf ~)\nEOF\n",     # a here-document that expands
    "git status; [[ -f x ]]",            # what the parser cannot read
    "git status; case x in a) rm;; esac",
    "",
    "   ",
])
def test_every_bypass_asks(command):
    v = verdict(command)
    assert v.decision == "ask", (command, v.reason)


def test_git_status_never_approves_git_status_then_rm_even_as_the_only_rule():
    only = parse_rules([{"tool": "shell", "args": {"command": "git status*"}}], "tools.allow")
    assert verdict("git status; rm -rf ~", allow=only).decision == "ask"
    assert verdict("git status", allow=only).decision == "allow"


@pytest.mark.parametrize("command", [
    "rm -rf ~",
    "git status; rm -rf ~",
    "git status && rm x",
    "ls $(rm -rf ~)",
    "ls `rm -rf ~`",
    "bash -c 'rm -rf /'",
    "sh -c \"git status; rm -rf /\"",
    "eval 'rm -rf /'",
    "ls > >(rm x)",
    "if true; then rm x; fi",
    "r\"m\" -rf /",                      # quote removal finds it
])
def test_a_deny_rule_matches_any_part(command):
    v = verdict(command, deny=DENY)
    assert v.decision == "deny" and v.source == "deny_rule", (command, v.reason)


def test_deny_wins_over_an_allow_that_would_match_and_over_yes():
    allow = parse_rules([{"tool": "shell", "args": {"command": "*"}}], "tools.allow")
    assert verdict("ls; rm -rf x", allow=allow, deny=DENY).decision == "deny"
    yes = decide("shell", {"command": "ls; rm -rf x"}, confirm="ask", yes=True, deny=DENY,
                 command_arg="command")
    assert yes.decision == "deny"


def test_a_redirection_through_a_symlink_out_of_the_folder_asks(tmp_path):
    (tmp_path / "link").symlink_to("/etc")
    assert verdict("git status > link/passwd", cwd=str(tmp_path)).decision == "ask"
    assert verdict("git status > notes.txt", cwd=str(tmp_path)).decision == "allow"


def test_the_shell_manifest_makes_rules_command_aware_through_the_executor(tmp_path,
                                                                           monkeypatch):
    """The real path: the manifest's command_arg reaches the approver; an unapproved bypass
    is asked (no terminal here: denied) and never runs."""
    monkeypatch.chdir(tmp_path)
    tool = tool_from_manifest(builtin_tools_dir() / "shell.yaml", "builtin")
    assert tool.command_arg == "command"
    only = parse_rules([{"tool": "shell", "args": {"command": "true*"}}], "tools.allow")
    ex = Executor({"shell": tool}, PolicyApprover(allow=only))
    marker = tmp_path / "ran"
    out = ex.execute(ToolCall("1", "shell", '{"command": "true; touch ran"}'))
    assert out.verdict.source == "no_terminal" and out.result.is_error
    assert not marker.exists()
