"""`agentcli ask`: one turn of the agent, reply on stdout, everything else on stderr (stdin:
``inputs.stdin``; rendering: ``ui.ask_output`` and ``ui.json_output``)."""

from __future__ import annotations

from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_RUNTIME
from ..inputs.stdin import compose_prompt, piped_share, read_piped_stdin
from ..messages import AgentDone, Message
from ..runtime import RunOptions
from ..ui.render import stop_warning


def run_ask(opts: RunOptions, prompt: str | None, *, json_out: bool = False) -> int:
    from .. import runtime
    from ..agent.loop import drive
    from ..ui.render import eprint, notice, warn

    settings = runtime.load(opts)
    piped = read_piped_stdin(settings, required=False,
                             prompt_given=prompt not in (None, "-"))
    text = compose_prompt(prompt, piped)
    profile = runtime.resolve(settings, opts, notice=notice)
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
        provider = runtime.make_provider(settings, profile, warn)
        model = getattr(provider, "model", None) or profile.model or ""
        executor = runtime.make_executor(settings, opts, tools, prompter, mcp)
        conversation = runtime.make_conversation(settings, opts, resumed, recorder, notice)
        agent = runtime.make_agent(settings, opts, provider, executor, conversation,
                                   profile=profile, recorder=recorder)
        from ..ui.ask_output import AskOutput

        out = AskOutput(json_out)
        if resumed is not None and not json_out:
            notice(runtime.resume_notice(resumed, profile.name, model))
            for line in runtime.unanswered_notices(resumed):
                notice(line)
        done = drive(agent.run(Message.user(text),
                               piped=piped_share(prompt, text) if piped else None), out.handle)
    finally:
        if mcp is not None:
            mcp.close()  # every server process it started is gone after this
        if prompter is not None:
            prompter.close()  # the /dev/tty handles it opened
        if recorder is not None:
            recorder.close()

    if json_out:
        from ..ui.json_output import json_text, turn_json

        payload = turn_json(done, profile.name, model)
        payload["session"] = recorder.session_id if recorder and not recorder.failed else None
        from ..agent.pricing import cost

        spent = cost(settings.sessions, {model: done.usage})
        if spent is not None:
            payload["cost"] = spent.as_json()
        print(json_text(payload))
    return exit_code(done, settings, warn, eprint, printed=not json_out and out.printed_text)


def exit_code(done: AgentDone, settings: Any, warn: Any, eprint: Any, *, printed: bool) -> int:
    """Say on stderr how the turn ended (when it did not simply finish) and pick the exit code."""
    reason = done.stop_reason
    if reason == "error":
        if done.partial_kept and printed:
            eprint("(the reply above is incomplete)")
        raise done.error
    if reason == "interrupted":
        eprint("interrupted" + (" (the reply above is incomplete)" if done.partial_kept
                                and printed else ""))
        return EXIT_INTERRUPTED
    warning = stop_warning(done, settings.max_steps)
    if warning is not None:
        warn(warning)
        return EXIT_RUNTIME
    return 0
