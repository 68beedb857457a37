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
from .common import (ApiOpt, AttachOpt, BaseUrlOpt, ConfigOpt, ContinueOpt, HideReasoningOpt,
                     JsonlOpt, MaxCostOpt, MaxStepsOpt, MaxTokensOpt, ModelOpt,
                     NoProjectInstructionsOpt, NoSaveOpt, NoStreamOpt, NoToolsOpt, ProviderOpt,
                     ReasoningOpt, RoleOpt, SandboxOpt, SchemaOpt, SessionOpt, SystemOpt, ToolOpt,
                     ToolsDirOpt, YesOpt, run_command)
from ..errors import AgentCliError, UsageError
from ..ui.render import eprint, report_error

EXIT_CODES = """\b
Exit codes (for scripts):
  0    done
  1    runtime: the provider or the network failed, the reply was cut by max_tokens (or
       a content filter), max_steps or --max-cost was reached, the answer did not
       match --schema (after one retry), the session store cannot be read
  2    usage or config: a bad flag or argument, a bad config file or tool manifest,
       a bad --schema, nothing to ask, no provider set up, an unknown session, tool
       or role, an attachment that is missing, not a regular file, too large or of
       an unknown type, or that the provider cannot take
  130  interrupted (Ctrl-C)
"""

EPILOG_MAIN = """\b
Examples:
  agentcli                                 open the chat REPL (same as `agentcli chat`)
  agentcli "What is 37 * 91?"              a bare prompt: the same as `agentcli ask "..."`
  agentcli -m gpt-4.1 "hi"                 ask's options may come before the prompt
  agentcli -c                              in a terminal: the REPL, continuing the latest
  agentcli ask tools                       a prompt that is also a command name: say `ask`
  git diff | agentcli "write a commit message"
  agentcli -p anthropic -m claude-sonnet-4-6 "hello"
  agentcli --base-url http://localhost:11434/v1 -m llama3.2 "hi"   (Ollama)
  agentcli tools list
  agentcli config init
  agentcli -c "and in French?"             continue the latest conversation
  agentcli sessions list                   saved conversations (show, search, export, ...)
  agentcli models                          the models the provider's server offers

""" + EXIT_CODES

EPILOG_ASK = """\b
Examples:
  agentcli ask "What is 37 * 91?"
  git diff | agentcli ask "write a commit message"    PROMPT first, then the piped text
  cat question.txt | agentcli ask                      the piped text is the prompt
  agentcli ask --json "2+2?" | jq .text
  agentcli ask --schema 'name, born int' "Dune's author?"   prints {"name": ..., "born": ...}
  agentcli ask -y -t file_read "summarise README.md"   approve tool calls without asking
  agentcli ask -c "and the second one?"               continue the latest conversation
  git diff | agentcli ask --role reviewer             a named system prompt from the config
  agentcli ask -a shot.png -a spec.pdf "does the screen match the spec?"

\b
Piped stdin (when stdin is not a terminal) is read up to `stdin_limit` (1 MiB) and sent with
PROMPT as one user message. Tool calls that need approval are asked on the terminal (/dev/tty);
with no terminal they are denied unless --yes or config allows them.

""" + EXIT_CODES

EPILOG_CHAT = """\b
Examples:
  agentcli chat
  agentcli chat -p anthropic --system "Answer tersely."
  cat notes.md | agentcli chat        the notes become context for your first message
  agentcli chat -a diagram.png        the image goes with your first message (/attach: later)
  agentcli chat -c                    continue the latest conversation (--session ID: that one)
Type /help inside the REPL for keys and slash commands.
"""


ROOT_OPTIONS = ("--version", "-V", "--help", "-h")


class OneLineErrors(TyperGroup):
    """The root group. click's usage errors as one line, like every other error (``error: no such
    option: --frobnicate (hint: agentcli ask --help)``), instead of its three-line usage block;
    exit 2. And the default command (``parse_args``): a first argument that is no command is
    the prompt of ``ask``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            args = self._default_command(list(args))
        return super().parse_args(ctx, args)

    def _default_command(self, args: list[str]) -> list[str]:
        """``agentcli "what is 2+2"`` and ``agentcli -m M "hi"`` are ``agentcli ask ...``;
        options alone on a terminal (``agentcli -c``, ``agentcli -p anthropic``) open ``chat``
        with them. Commands keep priority (``agentcli ask tools`` asks about "tools"); a single
        word that looks like a mistyped command is refused rather than sent to a model, and a
        lone ``help`` shows the help."""
        if not args or args[0] in self.commands or args[0] in ROOT_OPTIONS:
            return args
        first = args[0]
        if first == "help" and len(args) == 1:
            return ["--help"]
        if not first.startswith("-"):
            _refuse_a_typo(first, list(self.commands))
            return ["ask", *args]
        if sys.stdin.isatty() and sys.stdout.isatty() and self._chat_takes(args):
            return ["chat", *args]
        return ["ask", *args]

    def _chat_takes(self, args: list[str]) -> bool:
        """Are ``args`` options of ``chat`` and nothing else (no prompt, no ask-only option)?"""
        if any(a in ROOT_OPTIONS for a in args):
            return False
        try:
            sub = self.commands["chat"].make_context("chat", list(args))
        except (click_errors.ClickException, typer.Exit):
            return False
        return not sub.args

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
            report_error(UsageError(message[:1].lower() + message[1:], hint=_usage_hint(
                message, path)))
            code = e.exit_code
        except click_errors.ClickException as e:
            report_error(AgentCliError(e.format_message()))
            code = e.exit_code
        except AgentCliError as e:  # raised while choosing the command (a mistyped one)
            report_error(e)
            code = e.exit_code
        except typer.Abort:  # EOF at one of click's prompts
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


def _refuse_a_typo(word: str, commands: list[str]) -> None:
    """One lowercase word close to a command name (``agentcli sesions``) is a usage error, not
    a prompt: a typo should not cost a model request."""
    if not (word.isalpha() and word.islower() and len(word) <= 12):
        return
    from difflib import get_close_matches

    close = get_close_matches(word, commands, n=1, cutoff=0.8)
    if close:
        raise UsageError(f"no such command '{word}' (did you mean '{close[0]}'?)",
                         hint=f"agentcli {close[0]} --help; to send '{word}' to the model: "
                              f"agentcli ask {word}")


def _usage_hint(message: str, path: str) -> str:
    if message.lower().startswith("got unexpected extra argument") and path.endswith(" ask"):
        return 'put the prompt in quotes: agentcli "what is 2+2"'
    return f"{path} --help"


def _chat_main(opts) -> int:
    from ..inputs.stdin import read_piped_stdin
    from ..ui.repl.app import run_chat
    from ..runtime import load

    piped = None
    if not sys.stdin.isatty() and "-" not in opts.attach:  # -a - reads stdin as an attachment
        piped = read_piped_stdin(load(opts), required=False)
    return run_chat(opts, piped_text=piped or None)


# --- options shared by chat and ask -----------------------------------------------------------

def _run_options(*, config: str | None = None, tool: list[str] | None = None,
                 tools_dir: list[str] | None = None, no_stream: bool = False,
                 continue_: bool = False, no_save: bool = False,
                 no_project_instructions: bool = False,
                 attach: list[str] | None = None, **flags: Any):
    """The ask/chat flags as RunOptions (``flags``: the ones named as RunOptions names them)."""
    from ..runtime import RunOptions, tool_names

    return RunOptions(config=config or None, tools=tool_names(tool or []),
                      tools_dirs=tuple(tools_dir or ()), stream=False if no_stream else None,
                      continue_latest=continue_, save=not no_save,
                      project_instructions=not no_project_instructions,
                      attach=tuple(attach or ()), **flags)


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
        subcommand_metavar="COMMAND [ARGS]... | PROMPT",
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
        hide_reasoning: bool = HideReasoningOpt, jsonl: bool = JsonlOpt,
        max_cost: Optional[float] = MaxCostOpt, sandbox: Optional[str] = SandboxOpt,
        no_project_instructions: bool = NoProjectInstructionsOpt,
        schema: Optional[str] = SchemaOpt, attach: Optional[List[str]] = AttachOpt,
    ) -> None:
        """Ask one question, print the answer, exit."""
        opts = _run_options(config=config, provider=provider, model=model, base_url=base_url,
                            system=system, yes=yes, no_tools=no_tools, tool=tool,
                            tools_dir=tools_dir, max_steps=max_steps, no_stream=no_stream,
                            max_tokens=max_tokens, continue_=continue_, session=session,
                            no_save=no_save, role=role, api=api, reasoning=reasoning,
                            hide_reasoning=hide_reasoning, max_cost=max_cost, sandbox=sandbox,
                            no_project_instructions=no_project_instructions, attach=attach)

        def body() -> int:
            from .ask import run_ask

            return run_ask(opts, prompt, json_out=json_out, jsonl=jsonl, schema=schema)

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
        hide_reasoning: bool = HideReasoningOpt, sandbox: Optional[str] = SandboxOpt,
        no_project_instructions: bool = NoProjectInstructionsOpt,
        attach: Optional[List[str]] = AttachOpt,
    ) -> None:
        """Open the interactive chat REPL."""
        opts = _run_options(config=config, provider=provider, model=model, base_url=base_url,
                            system=system, yes=yes, no_tools=no_tools, tool=tool,
                            tools_dir=tools_dir, max_steps=max_steps, no_stream=no_stream,
                            max_tokens=max_tokens, continue_=continue_, session=session,
                            no_save=no_save, role=role, api=api, reasoning=reasoning,
                            hide_reasoning=hide_reasoning, sandbox=sandbox,
                            no_project_instructions=no_project_instructions, attach=attach)
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
    from .models import register as register_models

    register_models(app)
    return app


def main() -> None:
    app = build_app()
    app(prog_name="agentcli")


if __name__ == "__main__":  # pragma: no cover
    main()
