"""The local model itself: a GGUF run by llama-cpp-python, inside the model host process.

Only the model host (``host_main``) and tests or benches running it in-process import this;
agentcli talks to it through ``host.ModelHost`` and never loads llama.cpp itself, so a native
crash of the model cannot take agentcli down.

The prompt is rendered with the model's own chat template (GGUF metadata) and generated with
``create_completion``, so llama.cpp reuses the KV cache for the unchanged prefix of the
conversation. Tools follow the format in ``tool_format``; once the model opens ``<tool_call>``,
the call is finished under a llama.cpp grammar built from the tools' JSON Schemas
(``grammar``), checked by llama.cpp's own parser before it is used, so a started call has a
known name and schema-shaped arguments. Weight repacking is as the profile says, or, unset,
off only where llama.cpp's AMX path could run (``repack``: it crashes there).

Never silent: what makes the model's prompt or calls weaker than configured (a chat template that
fails, so ChatML is used; a grammar llama.cpp refuses, so calls are less constrained) is told to
the user once per engine through ``warn``. ``should_stop`` is asked after every token: when it
says so, generation stops (``Stopped``) and the model is ready for the next request.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ...errors import ModelLoadError, ProviderError
from ...messages import (Message, Part, ResponseDone, TextDelta, TextPart,
                         ToolCall, ToolDefinition, Usage)
from . import grammar as lg
from . import repack
from . import tool_format as lt
from .files import INSTALL_HINT, captured_stderr, error_detail
from .protocol import ModelConfig

# Measured on SmolLM2 (bench/bench_local.py): without it a started call often loops inside a
# string until max_tokens (4/6 schema-valid); with 1.3 every call closed (6/6).
GRAMMAR_REPEAT_PENALTY = 1.3
PEEK_TOKENS = 8  # after a call: enough to see whether another <tool_call> follows


class Stopped(Exception):
    """Generation stopped because ``should_stop`` said so; ``output_tokens`` were made."""

    def __init__(self, output_tokens: int = 0) -> None:
        super().__init__("stopped")
        self.output_tokens = output_tokens


class Engine:
    """One loaded model and what it needs to answer: chat template, stops, grammars."""

    def __init__(self, config: ModelConfig, warn: Callable[[str], None],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.name = Path(config.path).name
        self._warn = warn
        self._should_stop = should_stop
        self._warned: set[str] = set()
        self.max_tokens = config.max_tokens
        self._llm: Any = None
        self._formatter: Any = None
        self._bos_text = ""
        self._stops: list[str] = []
        self._grammars: dict[str, Any] = {}  # tool-set key -> LlamaGrammar | None

    # --- loading --------------------------------------------------------------------------------

    def load(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            import llama_cpp
            from llama_cpp import _logger as llama_logger
        except ImportError as e:  # installed but broken (e.g. a missing shared library)
            raise ModelLoadError(f"llama-cpp-python cannot be imported: {e}",
                                 hint=f"reinstall it: {INSTALL_HINT}") from e
        config = self.config
        self.repack = repack.resolve(config.repack)
        with captured_stderr() as log, repack.model_params(self.repack):
            try:
                llm = llama_cpp.Llama(model_path=config.path, n_ctx=config.n_ctx,
                                      n_threads=config.n_threads, verbose=True)
            except (ValueError, RuntimeError, OSError, MemoryError) as e:
                log.flush()
                log.seek(0)
                detail = error_detail(log.read()) or str(e)
                raise ModelLoadError(
                    f"llama.cpp could not load {config.path}: {detail}",
                    hint="the file may be damaged or too big for this machine's memory; try a "
                         "smaller quantisation or a lower n_ctx") from e
        repack.check_loaded(llm, self.repack)
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

    def repack_used(self) -> bool | None:
        """Weight repacking as llama.cpp was asked for it: the field of the very struct the
        model was loaded with (None: this llama-cpp-python has no such field)."""
        params = getattr(self._llm, "model_params", None)
        value = getattr(params, repack.FIELD, None)
        return None if value is None else bool(value)

    def _warn_once(self, key: str, line: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(line)

    def _use_template(self, template: str | None, eos: str, bos: str) -> None:
        """The model's own chat template from its GGUF metadata; ChatML, said once, otherwise."""
        self._formatter = None
        if not template:
            self._warn_once("template", f"local model {self.name} has no chat template; "
                                        "prompts use ChatML, which it may not follow")
            return
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        except Exception as e:  # a template jinja2 cannot compile
            self._warn_once("template", f"the chat template of {self.name} cannot be used "
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
            self._warn_once("render", f"the chat template of {self.name} failed on this "
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
            tokens, max_tokens=max_tokens, temperature=self.config.temperature, top_p=0.9,
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
                if self._should_stop():
                    raise Stopped()
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

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
               system: str | None = None) -> Iterator[TextDelta | ResponseDone]:
        """``TextDelta``s as they come, then one ``ResponseDone`` (``Stopped`` when asked to)."""
        self.load()
        if tools:
            self._grammar(tools)  # built (and any weakening told) before the reply, not mid-call
        tokens, budget = self._prompt(messages, lt.system_prompt(system, tools))
        state: dict[str, Any] = {"out": 0, "finish": "stop"}
        text: list[str] = []
        calls: list[ToolCall] = []
        try:
            for ev in self._generate(tokens, budget, tools, state):
                if isinstance(ev, TextDelta):
                    text.append(ev.text)
                    yield ev
                else:
                    calls.append(ev)
        except Stopped as e:
            e.output_tokens = state["out"]
            raise
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
            for piece in self._run(ctx, min(PEEK_TOKENS, budget - state["out"]), state):
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
