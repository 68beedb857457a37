"""`agentcli ask`: one turn of the agent, reply on stdout, everything else on stderr (stdin:
``inputs.stdin``; rendering: ``ui.ask_output`` and ``ui.json_output``)."""

from __future__ import annotations

from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_RUNTIME
from ..inputs.stdin import compose_prompt, piped_share, read_piped_stdin
from ..messages import AgentDone, AgentEvent, Message
from ..runtime import RunOptions


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
        provider = runtime.make_provider(settings, profile, warn)
        model = getattr(provider, "model", None) or profile.model or ""
        executor = runtime.make_executor(settings, opts, tools, prompter, mcp)
        agent = runtime.make_agent(settings, opts, provider, executor, profile=profile,
                                   history=resumed.history if resumed else None,
                                   recorder=recorder)
        agent.system = runtime.conversation_system(settings, opts, resumed)
        from ..ui.ask_output import AskOutput

        out = AskOutput(json_out)
        handle = out.handle
        if resumed is not None and not json_out:
            notice(runtime.resume_notice(resumed, profile.name, model, settings))
        if recorder is not None:
            recorder.begin_turn(provider=profile.name, model=model, system=agent.system,
                                role=runtime.conversation_role(opts, resumed),
                                piped=piped_share(prompt, text) if piped else None)
            handle = _both(recorder.handle, out.handle)
        done = drive(agent.run(Message.user(text)), handle)
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


def _both(first: Any, second: Any) -> Any:
    def handle(event: AgentEvent) -> None:
        first(event)
        second(event)
    return handle


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
    if reason == "max_steps":
        warn(f"stopped after {settings.max_steps} model requests without a final answer "
             "(raise it with --max-steps)")
        return EXIT_RUNTIME
    if reason == "max_tokens":
        warn("the reply was cut off by the reply token limit; raise it with --max-tokens N "
             "(or max_tokens in the provider profile)")
        return EXIT_RUNTIME
    if reason == "content_filter":
        warn("the provider withheld the rest of the reply (content filter / refusal)")
        return EXIT_RUNTIME
    return 0
