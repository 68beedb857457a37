"""What every command module shares: the error funnel and the typer options.

Kept apart from cli.py so the command modules (tools_cli, mcp_cli, sessions.cli, roles) import
this small module, never the app that imports them (no import cycle). Only typer and the stdlib
at the top: startup time.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

import typer

from ..errors import EXIT_INTERRUPTED, AgentCliError, debug_enabled, redact_url
from ..ui.render import color, eprint, report_error

# --- the error funnel -------------------------------------------------------------------------------

def run_command(fn: Callable[[], int | None]) -> NoReturn:
    """Run a command body; every way out becomes an exit code, never a traceback."""
    try:
        code = fn() or 0
    except AgentCliError as e:
        report_error(e)
        code = e.exit_code
    except KeyboardInterrupt:
        eprint("interrupted")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error worth a message
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        except OSError:
            pass
        code = 0
    except Exception as e:  # a bug: one line, and how to get the details
        if debug_enabled():
            raise
        eprint(color("31", "internal error: ") + redact_url(f"{type(e).__name__}: {e} ") +
               "(this is a bug in agentcli; rerun with AGENTCLI_DEBUG=1 for the traceback "
               "and please report it)")
        code = 1
    raise typer.Exit(code)



# --- options shared by several commands ------------------------------------------------------

ConfigOpt = typer.Option(None, "--config", envvar="AGENTCLI_CONFIG", metavar="PATH",
                         help="Config file (default: <config dir>/config.yaml).")
ProviderOpt = typer.Option(None, "--provider", "-p", metavar="NAME",
                           help="Provider profile from config, or openai | anthropic | local.")
ModelOpt = typer.Option(None, "--model", "-m", metavar="NAME", help="Model name.")
BaseUrlOpt = typer.Option(None, "--base-url", metavar="URL",
                          help="API base URL (e.g. http://localhost:11434/v1 for Ollama).")
SystemOpt = typer.Option(None, "--system", "-s", metavar="TEXT", help="System prompt.")
YesOpt = typer.Option(False, "--yes", "-y", help="Approve every tool call without asking.")
NoToolsOpt = typer.Option(False, "--no-tools", help="Do not offer any tool to the model.")
ToolOpt = typer.Option(None, "--tool", "-t", metavar="NAME",
                       help="Offer only this tool (repeatable, or comma-separated).")
ToolsDirOpt = typer.Option(None, "--tools-dir", metavar="DIR",
                           help="Also load tool plugins from DIR (repeatable).")
MaxStepsOpt = typer.Option(None, "--max-steps", metavar="N",
                           help="Most model requests in one turn (default 10).")
MaxTokensOpt = typer.Option(None, "--max-tokens", metavar="N",
                            help="Reply token budget per request (a reply cut by it is "
                                 "reported, exit 1).")
# conversations (sessions issue)
ContinueOpt = typer.Option(False, "--continue", "-c",
                           help="Continue the latest saved conversation.")
SessionOpt = typer.Option(None, "--session", metavar="ID",
                          help="Continue the saved conversation ID (or a unique start of it).")
NoSaveOpt = typer.Option(False, "--no-save", help="Save nothing of this run (private).")
RoleOpt = typer.Option(None, "--role", metavar="NAME",
                       help="Use the system prompt of role NAME from the config (-s overrides).")
# today's models (reasoning, the OpenAI API)
ApiOpt = typer.Option(None, "--api", metavar="API",
                      help="OpenAI: auto | responses | chat (auto: Responses for api.openai.com, "
                           "Chat Completions for any other server).")
ReasoningOpt = typer.Option(None, "--reasoning", metavar="LEVEL",
                            help="Reasoning effort: none | minimal | low | medium | high | xhigh "
                                 "(Anthropic: extended thinking).")
HideReasoningOpt = typer.Option(False, "--hide-reasoning",
                                help="Do not show the model's reasoning.")
NoStreamOpt = typer.Option(False, "--no-stream",
                           help="Wait for whole replies instead of streaming (servers that "
                                "cannot stream tool calls).")
AttachOpt = typer.Option(None, "--attach", "-a", metavar="PATH|URL|-",
                         help="Attach a file, a URL or - (stdin) to the message (repeatable): "
                              "png, jpeg, gif, webp and PDF go to the model as images and "
                              "documents, text files as labelled blocks.")
# scripts (ask)
JsonlOpt = typer.Option(False, "--jsonl",
                        help="Print the run as JSON events, one per line, as they happen "
                             "(session, text, reasoning, tool_call, approval, tool_result, "
                             "notice, usage, done, error; schema v1: see the README).")
MaxCostOpt = typer.Option(None, "--max-cost", metavar="USD",
                          help="Stop the run before a request whose estimated input alone would "
                               "cross USD, or once its spend does (exit 1; needs the model's "
                               "price in the config).")
SandboxOpt = typer.Option(None, "--sandbox", metavar="MODE",
                          help="Tool sandbox: workspace-write (default: commands write only in "
                               "the working folder, no network, secrets hidden) | read-only | "
                               "off (no walls).")
NoProjectInstructionsOpt = typer.Option(False, "--no-project-instructions",
                                        help="Do not add AGENTS.md / AGENTCLI.md to the system "
                                             "prompt.")
SchemaOpt = typer.Option(None, "--schema", metavar="SCHEMA",
                         help="The final answer must be JSON matching SCHEMA: a JSON Schema file, "
                              "inline JSON ('{...}') or a short form ('name, age int, bio: a "
                              "description'; types str, int, float, bool). stdout is then that "
                              "JSON alone, on one line (--json/--jsonl: as `data`). An answer "
                              "that does not match is sent back once with the errors, then "
                              "exit 1.")
