"""Token counts before a request is sent: exact for OpenAI models and offline, a labelled
estimate for every other model.

Why not ``tiktoken.get_encoding``: on first use it downloads the encoding file, which fails (or
waits on a dead network) on an air-gapped machine. agentcli ships OpenAI's two current encoding
files in the wheel (``agentcli/data/<name>.tiktoken.xz``, OpenAI's files compressed with xz) and
runs tiktoken's own constructor for the encoding (``tiktoken_ext.openai_public``) with a loader
that reads the shipped file and checks it against the sha256 tiktoken pins for that URL. Nothing
is fetched, ever; if anything is off (a tiktoken that changed its data, a damaged file, no
``lzma`` module) the counter falls back to the estimate and says why.

The estimate (any model tiktoken does not map to a shipped encoding: Anthropic, local models,
OpenAI-compatible servers' models) is one token per ``ESTIMATE_BYTES`` bytes of UTF-8: byte-level
BPE tokenizers average 3.5-4.5 bytes per token on English and code, so it errs high, which keeps
trimming inside the window.
"""

from __future__ import annotations

import functools
import hashlib
import types
from pathlib import Path
from typing import Any, Callable

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SHIPPED = ("o200k_base", "cl100k_base")
ESTIMATE_BYTES = 3
_PIECE = 1 << 20  # characters counted at once (bounds the memory of one exact count)


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates, which JSON can carry, count as 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def encoding_name(model: str | None) -> str | None:
    """The tiktoken encoding OpenAI uses for ``model``, when agentcli ships it (no import of
    tiktoken's encodings, no network)."""
    if not model:
        return None
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    name = model.rsplit("/", 1)[-1] if model.startswith("openai/") else model  # OpenRouter
    try:
        found = encoding_name_for_model(name)
    except KeyError:
        return None
    return found if found in SHIPPED else None


def _shipped_loader(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stands in for ``tiktoken.load.load_tiktoken_bpe``: the same ranks, from the wheel."""
    import binascii
    import lzma

    name = blobpath.rsplit("/", 1)[-1]
    path = DATA_DIR / f"{name}.xz"
    try:
        raw = lzma.decompress(path.read_bytes())
    except (OSError, lzma.LZMAError) as e:
        raise ValueError(f"cannot read the shipped encoding {path.name}: {e}") from e
    if expected_hash and hashlib.sha256(raw).hexdigest() != expected_hash:
        raise ValueError(f"the shipped {name} does not match the data this tiktoken expects")
    parts = raw.split()
    return dict(zip(map(binascii.a2b_base64, parts[0::2]), map(int, parts[1::2])))


@functools.lru_cache(maxsize=None)
def load_encoding(name: str) -> Any:
    """A ``tiktoken.Encoding`` built offline from the shipped file (about 0.4 s for o200k_base).
    Raises ValueError (or ImportError) when it cannot be built exactly. Cached for the process,
    as tiktoken caches its own: an Encoding is immutable, and /model must not pay twice."""
    if name not in SHIPPED:
        raise ValueError(f"agentcli does not ship the {name} encoding")
    import tiktoken
    import tiktoken_ext.openai_public as public

    constructor = getattr(public, name)
    # tiktoken's own constructor (pattern, special tokens, pinned hash), with the shipped file
    # in place of the download; a copy of the function, so nothing shared is patched
    offline = types.FunctionType(constructor.__code__,
                                 {**vars(public), "load_tiktoken_bpe": _shipped_loader},
                                 constructor.__name__, constructor.__defaults__,
                                 constructor.__closure__)
    return tiktoken.Encoding(**offline())


class TokenCounter:
    """Counts tokens of text for one model. ``exact``: OpenAI's tokenizer for the model;
    otherwise an estimate (``label`` says which). The encoding loads on the first count, so a
    run that never needs a count never pays for it."""

    def __init__(self, model: str | None, *,
                 loader: Callable[[str], Any] = load_encoding) -> None:
        self.model = model
        self.problem: str | None = None
        """Why an exact count fell back to the estimate (None when it did not)."""
        self._loader = loader
        self._enc: Any = None

    @functools.cached_property
    def encoding(self) -> str | None:
        """The shipped encoding for the model, or None (resolved on first use: tiktoken's
        model table is imported only when a count or a label is needed)."""
        return encoding_name(self.model)

    @property
    def exact(self) -> bool:
        return self.encoding is not None and self.problem is None

    @property
    def loaded(self) -> bool:
        """Whether a count costs nothing more to start: the tokenizer is built, or none is
        needed (an estimate)."""
        return self._enc is not None or not self.exact

    @property
    def label(self) -> str:
        if self.exact:
            return f"exact ({self.encoding})"
        return "estimate"

    def _encoder(self) -> Any:
        if self._enc is None and self.exact:
            try:
                self._enc = self._loader(self.encoding)  # type: ignore[arg-type]
            except Exception as e:  # any failure to build it: estimate, and say why
                self.problem = f"{type(e).__name__}: {e}"
        return self._enc

    def count(self, text: str) -> int:
        if not text:
            return 0
        enc = self._encoder()
        if enc is not None:
            if len(text) <= _PIECE:
                return len(enc.encode_ordinary(text))
            # a huge text (15 MB of tool arguments) in pieces: the token list of the whole is
            # ~200 MB; the count may be off by about a token per piece boundary
            return sum(len(enc.encode_ordinary(text[i:i + _PIECE]))
                       for i in range(0, len(text), _PIECE))
        return estimate(text)


def estimate(text: str) -> int:
    """The labelled estimate: one token per ``ESTIMATE_BYTES`` bytes of UTF-8, rounded up."""
    return -(-utf8_len(text) // ESTIMATE_BYTES)
