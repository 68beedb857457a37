"""``api: auto`` for an OpenAI-compatible server that is not OpenAI's own: Chat Completions (all
such servers speak it), moving the conversation to the Responses API the first time the model
answers the 2026 refusal of tools with reasoning on Chat Completions ("Function tools with
reasoning_effort are not supported for M in /v1/chat/completions. To use function tools, use
/v1/responses or set reasoning_effort to 'none'."): that request is sent again on Responses,
the user is told once, and ``wire`` says ``openai_responses`` from then on (the caller keeps the
choice with the conversation, and may start there with ``use_responses``)."""

from __future__ import annotations

import re
from typing import Any, Iterator, Sequence

from ..errors import ProviderError
from ..messages import Message, Notice, StreamEvent, ToolDefinition
from ._common import first_refusal, one_line, refusal_of
from .openai_chat import OpenAIProvider
from .openai_responses import OpenAIResponsesProvider

_NEEDS_RESPONSES = re.compile(r"reasoning_effort.*/v1/responses", re.DOTALL)


def needs_responses(err: BaseException) -> bool:
    """Is ``err`` Chat Completions refusing tools with reasoning (use /v1/responses)?"""
    refusal = refusal_of(err)
    return refusal is not None and refusal.status == 400 and bool(
        _NEEDS_RESPONSES.search(refusal.message))


class OpenAIAutoProvider(OpenAIProvider):
    """Chat Completions until the model needs the Responses API, then Responses."""

    def __init__(self, profile: Any, settings: Any, warn: Any = None) -> None:
        super().__init__(profile, settings, warn)
        self._responses: OpenAIResponsesProvider | None = None

    def use_responses(self) -> None:
        """Speak the Responses API from now on (a resumed conversation that moved there)."""
        if self._responses is None:
            self._responses = OpenAIResponsesProvider.beside(self)
            self.wire = self._responses.wire

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True,
               output: Any = None) -> Iterator[StreamEvent]:
        if self._responses is None:
            refused = yield from first_refusal(
                super().stream(messages, tools, system=system, stream=stream, output=output),
                lambda e: bool(tools) and needs_responses(e))
            if refused is None:
                return
            self.use_responses()
            yield Notice(f"{self.model} takes tools with reasoning only on the Responses API: "
                         "this conversation uses it (/v1/responses) from now on", level="info")
            try:
                yield from self._delegate(messages, tools, system, stream, output)
            except ProviderError as e:
                refusal = refusal_of(e)
                if refusal is None or refusal.status not in (404, 405):
                    raise
                self._responses, self.wire = None, OpenAIProvider.wire  # back to where it was
                raise ProviderError(
                    f"{one_line(str(refused))}; and {self.errors.base_url}/responses does not "
                    f"exist (HTTP {refusal.status})",
                    hint="this server cannot run tools with this model's reasoning: use "
                         "--reasoning none, or --no-tools") from e
            return
        yield from self._delegate(messages, tools, system, stream, output)

    def _delegate(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
                  system: str | None, stream: bool, output: Any = None) -> Iterator[StreamEvent]:
        assert self._responses is not None
        self._responses.cache_key = self.cache_key
        yield from self._responses.stream(messages, tools, system=system, stream=stream,
                                          output=output)
