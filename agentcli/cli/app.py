"""The Typer app: flags -> RunOptions -> runtime objects; AgentCliError -> one line + exit code.

Startup matters (`--version`/`--help` <= 0.15 s): this module imports only typer and the stdlib at
the top; everything else is imported inside the command that needs it.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click, with its own exception classes
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors

from .. import __version__
from .common import (ApiOpt, BaseUrlOpt, ConfigOpt, ContinueOpt, HideReasoningOpt,
                     MaxStepsOpt, MaxTokensOpt, ModelOpt, NoProjectInstructionsOpt, NoSaveOpt,
                     NoStreamOpt, NoToolsOpt, ProviderOpt, ReasoningOpt, RoleOpt, SessionOpt,
                     SystemOpt, ToolOpt, ToolsDirOpt, YesOpt, run_command)
from ..errors import AgentCliError, UsageError
from ..ui.render import eprint, report_error

EPILOG_MAIN = """\b
Examples:
  agentcli                                 open the chat REPL (same as `agentcli chat`)
  agentcli ask "What is 37 * 91?"          one question, answer on stdout
  git diff | agentcli ask "write a commit message"
  agentcli ask -p anthropic -m claude-sonnet-4-6 "hello"
  agentcli ask --base-url http://localhost:11434/v1 -m llama3.2 "hi"   (Ollama)
  agentcli tools list
  agentcli config init
  agentcli ask -c "and in French?"        continue the latest conversation
  agentcli sessions list                   saved conversations (show, search, export, ...)

Exit codes: 0 ok, 1 provider/runtime error, 2 usage or config error, 130 interrupted.
"""

EPILOG_ASK = """\b
Examples:
  agentcli ask "What is 37 * 91?"
  git diff | agentcli ask "write a commit message"    PROMPT first, then the piped text
  cat question.txt | agentcli ask                      the piped text is the prompt
  agentcli ask --json "2+2?" | jq .text
  agentcli ask -y -t file_read "summarise README.md"   approve tool calls without asking
  agentcli ask -c "and the second one?"               continue the latest conversation
  git diff | agentcli ask --role reviewer             a named system prompt from the config

\b
Piped stdin (when stdin is not a terminal) is read up to `stdin_limit` (1 MiB) and sent with
PROMPT as one user message. Tool calls that need approval are asked on the terminal (/dev/tty);
with no terminal they are denied unless --yes or config allows them.
"""

EPILOG_CHAT = """\b
Examples:
  agentcli chat
  agentcli chat -p anthropic --system "Answer tersely."
  cat notes.md | agentcli chat        the notes become context for your first message
  agentcli chat -c                    continue the latest conversation (--session ID: that one)
Type /help inside the REPL for keys and slash commands.
"""


class OneLineErrors(TyperGroup):
    """click's usage errors as one line, like every other error (``error: no such option:
    --frobnicate (hint: agentcli ask --help)``), instead of its three-line usage block; exit 2."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:  # `agentcli config`: its help, exit 2
            e.show()
            code = e.exit_code
        except click_errors.UsageError as e:
            message = e.format_message().strip().rstrip(".")
            path = e.ctx.command_path if e.ctx is not None else self._path(args, prog_name)
            report_error(UsageError(message[:1].lower() + message[1:], hint=f"{path} --help"))
            code = e.exit_code
        except click_errors.ClickException as e:
            report_error(AgentCliError(e.format_message()))
            code = e.exit_code
        except typer.Abort:
            eprint("aborted")
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def _path(self, args: Any, prog_name: str | None) -> str:
        """The command the arguments name (for errors click raises without a context)."""
        words, group = [prog_name or "agentcli"], self
        for arg in sys.argv[1:] if args is None else list(args):
            command = getattr(group, "commands", {}).get(arg)
            if command is None:
                break
            words.append(arg)
            group = command
        return " ".join(words)


def _chat_main(opts) -> int:
    from ..inputs.stdin import read_piped_stdin
    from ..ui.repl.app import run_chat
    from ..runtime import load

    piped = None
    if not sys.stdin.isatty():
        piped = read_piped_stdin(load(opts), required=False)
    return run_chat(opts, piped_text=piped or None)


# --- options shared by chat and ask -----------------------------------------------------------

def _run_options(*, config: str | None = None, tool: list[str] | None = None,
                 tools_dir: list[str] | None = None, no_stream: bool = False,
                 continue_: bool = False, no_save: bool = False,
                 no_project_instructions: bool = False, **flags: Any):
    """The ask/chat flags as RunOptions (``flags``: the ones named as RunOptions names them)."""
    from ..runtime import RunOptions, tool_names

    return RunOptions(config=config or None, tools=tool_names(tool or []),
                      tools_dirs=tuple(tools_dir or ()), stream=False if no_stream else None,
                      continue_latest=continue_, save=not no_save,
                      project_instructions=not no_project_instructions, **flags)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="agentcli",
        cls=OneLineErrors,
        help="A terminal agent: chat with OpenAI, Anthropic, OpenAI-compatible servers or a "
             "local model, with tools you approve.",
        epilog=EPILOG_MAIN,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
        no_args_is_help=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback(invoke_without_command=True)
    def _root(ctx: typer.Context,
              version: bool = typer.Option(False, "--version", "-V", is_eager=True,
                                           help="Show the version and exit.")) -> None:
        if version:
            print(f"agentcli {__version__}")
            raise typer.Exit(0)
        if ctx.invoked_subcommand is None:
            if sys.stdin.isatty() and sys.stdout.isatty():
                # the chat command's own defaults, built here: ctx.invoke(chat) would pass typer's
                # unresolved OptionInfo objects as values
                run_command(lambda: _chat_main(_run_options()))
            else:
                print(ctx.get_help())
                report_error(UsageError("no command given",
                                        hint="use `agentcli ask PROMPT` when piping, or run "
                                             "`agentcli` in a terminal for the chat REPL"))
                raise typer.Exit(2)

    @app.command(epilog=EPILOG_ASK)
    def ask(
        prompt: Optional[str] = typer.Argument(None, metavar="PROMPT",
                                               help="The question; `-` or omitted: use stdin."),
        provider: Optional[str] = ProviderOpt, model: Optional[str] = ModelOpt,
        base_url: Optional[str] = BaseUrlOpt, system: Optional[str] = SystemOpt,
        yes: bool = YesOpt, no_tools: bool = NoToolsOpt, tool: Optional[List[str]] = ToolOpt,
        tools_dir: Optional[List[str]] = ToolsDirOpt, max_steps: Optional[int] = MaxStepsOpt,
        max_tokens: Optional[int] = MaxTokensOpt, config: Optional[str] = ConfigOpt,
        json_out: bool = typer.Option(False, "--json",
                                      help="Print one JSON object (text, tool_calls, usage, "
                                           "provider, model, stop_reason, steps)."),
        no_stream: bool = NoStreamOpt,
        continue_: bool = ContinueOpt, session: Optional[str] = SessionOpt,
        no_save: bool = NoSaveOpt, role: Optional[str] = RoleOpt,
        api: Optional[str] = ApiOpt, reasoning: Optional[str] = ReasoningOpt,
        hide_reasoning: bool = HideReasoningOpt,
        no_project_instructions: bool = NoProjectInstructionsOpt,
    ) -> None:
        """Ask one question, print the answer, exit."""
        opts = _run_options(config=config, provider=provider, model=model, base_url=base_url,
                            system=system, yes=yes, no_tools=no_tools, tool=tool,
                            tools_dir=tools_dir, max_steps=max_steps, no_stream=no_stream,
                            max_tokens=max_tokens, continue_=continue_, session=session,
                            no_save=no_save, role=role, api=api, reasoning=reasoning,
                            hide_reasoning=hide_reasoning,
                            no_project_instructions=no_project_instructions)

        def body() -> int:
            from .ask import run_ask

            return run_ask(opts, prompt, json_out=json_out)

        run_command(body)

    @app.command(epilog=EPILOG_CHAT)
    def chat(
        provider: Optional[str] = ProviderOpt, model: Optional[str] = ModelOpt,
        base_url: Optional[str] = BaseUrlOpt, system: Optional[str] = SystemOpt,
        yes: bool = YesOpt, no_tools: bool = NoToolsOpt, tool: Optional[List[str]] = ToolOpt,
        tools_dir: Optional[List[str]] = ToolsDirOpt, max_steps: Optional[int] = MaxStepsOpt,
        max_tokens: Optional[int] = MaxTokensOpt, config: Optional[str] = ConfigOpt,
        no_stream: bool = NoStreamOpt,
        continue_: bool = ContinueOpt, session: Optional[str] = SessionOpt,
        no_save: bool = NoSaveOpt, role: Optional[str] = RoleOpt,
        api: Optional[str] = ApiOpt, reasoning: Optional[str] = ReasoningOpt,
        hide_reasoning: bool = HideReasoningOpt,
        no_project_instructions: bool = NoProjectInstructionsOpt,
    ) -> None:
        """Open the interactive chat REPL."""
        opts = _run_options(config=config, provider=provider, model=model, base_url=base_url,
                            system=system, yes=yes, no_tools=no_tools, tool=tool,
                            tools_dir=tools_dir, max_steps=max_steps, no_stream=no_stream,
                            max_tokens=max_tokens, continue_=continue_, session=session,
                            no_save=no_save, role=role, api=api, reasoning=reasoning,
                            hide_reasoning=hide_reasoning,
                            no_project_instructions=no_project_instructions)
        run_command(lambda: _chat_main(opts))

    from .config import config_app

    app.add_typer(config_app, name="config")
    from .tools import tools_app

    app.add_typer(tools_app, name="tools")
    from .mcp import mcp_app

    app.add_typer(mcp_app, name="mcp")
    from .sessions import sessions_app

    app.add_typer(sessions_app, name="sessions")
    from .roles import roles_app

    app.add_typer(roles_app, name="roles")
    return app


def main() -> None:
    app = build_app()
    app(prog_name="agentcli")


if __name__ == "__main__":  # pragma: no cover
    main()
