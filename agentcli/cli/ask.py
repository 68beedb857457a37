"""`agentcli ask`: one turn of the agent, reply on stdout, everything else on stderr (stdin:
``inputs.stdin``; rendering: ``ui.ask_output`` for people and ``--json``, ``ui.events_jsonl``
for ``--jsonl``)."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_RUNTIME, AgentCliError, UsageError
from ..inputs import attachments
from ..inputs.stdin import read_piped_stdin
from ..messages import AgentDone
from ..runtime import RunOptions
from ..ui.render import stop_warning


def run_ask(opts: RunOptions, prompt: str | None, *, json_out: bool = False,
            jsonl: bool = False, schema: str | None = None) -> int:
    from .. import runtime
    from ..agent.loop import drive
    from ..ui.render import notice, warn

    if json_out and jsonl:
        raise UsageError("--json and --jsonl cannot be used together",
                         hint="--json prints one object at the end, --jsonl one per event")
    settings = runtime.load(opts)
    if schema is not None:  # a bad one fails at once: before stdin is waited on
        from ..inputs.schema import load_schema

        checked = load_schema(schema)
    attached, piped = attachments.read_all(opts.attach, settings)  # bad input: exit 2, now
    if "-" not in opts.attach:
        piped = read_piped_stdin(settings, required=False,
                                 prompt_given=prompt not in (None, "-") or bool(attached))
    message, share = attachments.compose(prompt, piped, attached)
    profile = runtime.resolve(settings, opts, notice=notice)
    structured = runtime.structured_output(checked if schema is not None else None, profile)
    recorder = runtime.make_recorder(settings, opts, warn)
    mcp = None
    prompter = None
    try:
        resumed = runtime.resume(settings, opts, recorder)
        tools = runtime.select_tools(settings, opts, warn)
        mcp = runtime.start_mcp(settings, opts, warn)  # servers start while the provider loads
        if (tools or mcp) and not opts.yes:
            from ..toolrun.approval import open_tty_prompter

            prompter = open_tty_prompter()
        profile = runtime.settled_profile(profile, resumed)
        history = resumed.history if resumed is not None else []
        attachments.check_sendable([*history, message], profile)  # before any model loads
        executor = runtime.make_executor(settings, opts, tools, prompter, mcp)  # its tool
        provider = runtime.make_provider(settings, profile, warn)  # host boots meanwhile
        model = getattr(provider, "model", None) or profile.model or ""
        limit = runtime.cost_limit(settings, opts, model)  # no price: a usage error, now
        conversation = runtime.make_conversation(settings, opts, resumed, recorder, notice)
        agent = runtime.make_agent(settings, opts, provider, executor, conversation,
                                   profile=profile, recorder=recorder, limit=limit,
                                   structured=structured)
        out = _output(json_out or structured is not None, jsonl, not settings.hide_reasoning,
                      structured is not None)
        if jsonl:
            from ..ui.events_jsonl import OutputClosed

            try:
                out.session(conversation.id if recorder is not None else None, profile.name,
                            model)
            except OutputClosed:
                return _reader_gone()
        elif resumed is not None and not json_out:
            notice(runtime.resume_notice(resumed, profile.name, model, settings))
            for line in runtime.unanswered_notices(resumed):
                notice(line)
        done = drive(agent.run(message, piped=share), out.handle)
    finally:
        if mcp is not None:
            mcp.close()  # every server process it started is gone after this
        if prompter is not None:
            prompter.close()  # the /dev/tty handles it opened
        if recorder is not None:
            recorder.close()
    return _report(done, out, settings, model, profile.name, recorder,
                   mode="jsonl" if jsonl else "json" if json_out else
                   "schema" if structured is not None else "text",
                   schema=structured is not None)


def _output(json_out: bool, jsonl: bool, show_reasoning: bool, schema: bool) -> Any:
    """The renderer: --jsonl events, or AskOutput (``json_out``: stdout gets only the final
    object, --json's or --schema's)."""
    if jsonl:
        from ..ui.events_jsonl import JsonlOutput

        return JsonlOutput(show_reasoning=show_reasoning, schema=schema)
    from ..ui.ask_output import AskOutput

    return AskOutput(json_out, show_reasoning=show_reasoning)


def _reader_gone() -> int:
    """stdout's reader left (``| head``): end quietly, and silence the final flush."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    except OSError:
        pass
    return 0


def _report(done: AgentDone, out: Any, settings: Any, model: str, provider: str,
            recorder: Any, *, mode: str, schema: bool = False) -> int:
    """The end of the run in the chosen output, and its exit code. ``mode`` "schema": plain
    ``--schema``, whose stdout is the answer's JSON alone (nothing when there is none)."""
    from ..agent.pricing import cost
    from ..ui.render import eprint, warn

    if mode == "jsonl" and out.closed:
        return _reader_gone()
    spent = cost(settings.sessions, {model: done.usage})
    error = done.error if done.stop_reason == "error" else None
    code = error.exit_code if isinstance(error, AgentCliError) else \
        exit_code(done, settings, warn, eprint, printed=mode == "text" and out.printed_text)
    if mode == "json":
        from ..ui.json_output import json_text, turn_json

        payload = turn_json(done, provider, model, schema=schema)
        payload["session"] = recorder.session_id if recorder and not recorder.failed else None
        if spent is not None:
            payload["cost"] = spent.as_json()
        print(json_text(payload))
    elif mode == "schema" and done.stop_reason == "end_turn" and done.output is not None:
        from ..ui.json_output import json_text

        print(json_text(done.output.data))
    elif mode == "jsonl":
        from ..ui.events_jsonl import OutputClosed

        try:
            if error is not None:
                out.error(error, code)
            out.done(done, spent, code)
        except OutputClosed:
            return _reader_gone()
    if error is not None:
        if done.partial_kept and mode == "text" and out.printed_text:
            eprint("(the reply above is incomplete)")
        raise error
    return code


def exit_code(done: AgentDone, settings: Any, warn: Any, eprint: Any, *, printed: bool) -> int:
    """Say on stderr how the turn ended (when it did not simply finish) and pick the exit code:
    0 done, 1 it stopped short (max_steps, max_tokens, content_filter, max_cost) or its answer
    did not match --schema, 130 interrupted. (An error is raised by the caller: its own exit
    code.)"""
    reason = done.stop_reason
    if reason == "interrupted":
        eprint("interrupted" + (" (the reply above is incomplete)" if done.partial_kept
                                and printed else ""))
        return EXIT_INTERRUPTED
    if reason == "max_cost":
        return EXIT_RUNTIME  # the agent's notice named the spend
    if reason == "schema":
        for line in schema_failure(done.output):
            eprint(line)
        return EXIT_RUNTIME
    warning = stop_warning(done, settings.max_steps)
    if warning is not None:
        warn(warning)
        return EXIT_RUNTIME
    return 0


SHOWN_ERRORS = 5


def schema_failure(outcome: Any) -> list[str]:
    """The lines on stderr for an answer that did not match --schema after the retry: what
    happened, then one line per error (at most ``SHOWN_ERRORS``, then how many more)."""
    from ..ui.render import color, sanitize

    n = outcome.total
    lines = [color("31", "error: ") + f"the answer does not match --schema ({n} error"
             f"{'s' if n != 1 else ''}), even after it was sent back once with them"]
    lines += [f"  {sanitize(e)}" for e in outcome.errors[:SHOWN_ERRORS]]
    if n > SHOWN_ERRORS:
        lines.append(f"  … {n - SHOWN_ERRORS} more")
    return lines
