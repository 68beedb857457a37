"""Token counting offline: tiktoken's real encodings built from the files shipped in the wheel,
never fetched (the network is blocked here, and tiktoken's own download path is made to fail
loudly); every other model gets an estimate that says it is one."""

from __future__ import annotations

import hashlib
import lzma
import re
from pathlib import Path

import pytest

from agentcli.agent import tokens
from agentcli.agent.tokens import TokenCounter, encoding_name, estimate, load_encoding


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """tiktoken's downloader (and its cache reader) must never run."""
    import tiktoken.load

    def refuse(*args, **kwargs):
        raise AssertionError(f"tiktoken tried to fetch its data: {args!r}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent/never-used")


def release_encodings() -> None:
    """Give back the memory a loaded encoding holds (~100 MiB): every later test that forks
    (the executor runs tools in a forked child) pays for the parent's size."""
    import ctypes
    import gc

    load_encoding.cache_clear()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@pytest.fixture(scope="module")
def o200k():
    yield load_encoding("o200k_base")
    release_encodings()


def test_shipped_files_are_exactly_the_data_tiktoken_pins():
    # the hashes are read from tiktoken's own source, not from agentcli
    import tiktoken_ext.openai_public as public

    source = Path(public.__file__).read_text()
    for name in tokens.SHIPPED:
        body = source[source.index(f"def {name}():"):]
        pinned = re.search(r'expected_hash="([0-9a-f]{64})"', body).group(1)
        raw = lzma.decompress((tokens.DATA_DIR / f"{name}.tiktoken.xz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == pinned
        assert (tokens.DATA_DIR / f"{name}.tiktoken.xz").stat().st_size < 2_000_000


@pytest.fixture(autouse=True, scope="module")
def _release():
    yield
    release_encodings()


def test_exact_counts_match_openais_published_token_ids(o200k):
    # token ids from tiktoken's README and OpenAI's cookbook, for the two encodings
    assert o200k.encode("hello world") == [24912, 2375]
    cl100k = load_encoding("cl100k_base")
    assert cl100k.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    text = "Grüße, 世界! def f(x):\n    return x ** 2  # ✓ 🙂"
    assert o200k.decode(o200k.encode(text)) == text


def test_openai_models_count_exactly_and_others_are_labelled_estimates():
    assert encoding_name("gpt-4.1-mini") == "o200k_base"
    assert encoding_name("gpt-4o") == "o200k_base"
    assert encoding_name("openai/gpt-4o") == "o200k_base"  # OpenRouter's spelling
    assert encoding_name("gpt-4") == "cl100k_base"
    for other in ("claude-sonnet-4-6", "llama3.2", "SmolLM2-135M-Instruct.Q4_1", None, ""):
        assert encoding_name(other) is None
        counter = TokenCounter(other)
        assert not counter.exact and counter.label == "estimate"
        assert counter.count("a" * 30) == 10  # one token per three bytes, rounded up
    exact = TokenCounter("gpt-4.1-mini")
    assert exact.exact and exact.label == "exact (o200k_base)"
    assert exact.count("hello world") == 2


def test_the_encoding_loads_only_when_a_count_is_needed():
    loads = []
    counter = TokenCounter("gpt-4o", loader=lambda name: loads.append(name))
    assert counter.count("") == 0 and loads == []


def test_a_broken_encoding_falls_back_to_the_estimate_and_says_why():
    def broken(name):
        raise ValueError("the shipped o200k_base does not match")

    counter = TokenCounter("gpt-4o", loader=broken)
    assert counter.count("x" * 9) == 3
    assert not counter.exact and counter.label == "estimate"
    assert "does not match" in counter.problem


def test_damaged_shipped_data_is_refused_not_used(tmp_path, monkeypatch):
    (tmp_path / "o200k_base.tiktoken.xz").write_bytes(lzma.compress(b"aGk= 0\n"))
    monkeypatch.setattr(tokens, "DATA_DIR", tmp_path)
    load_encoding.cache_clear()  # the real file may already be loaded in this process
    with pytest.raises(ValueError, match="does not match"):
        load_encoding("o200k_base")
    (tmp_path / "o200k_base.tiktoken.xz").write_bytes(b"not xz at all")
    with pytest.raises(ValueError, match="cannot read"):
        load_encoding("o200k_base")
    assert TokenCounter("gpt-4o").count("abcdef") == 2  # estimated, no crash
    load_encoding.cache_clear()


def test_hostile_text_never_crashes_a_count(o200k):
    counter = TokenCounter("gpt-4o", loader=lambda name: o200k)
    assert counter.count("<|endoftext|> and <|endofprompt|>") > 2  # text, not special tokens
    assert counter.count("lone \ud800 surrogate") > 0
    assert counter.count("\x1b]52;c;aGk=\x07") > 0
    assert estimate("\ud800") == 1


def test_counting_a_megabyte_is_bounded(o200k):
    # counts the work, not the time: a 1 MB run of one letter is encoded in one call and is
    # never more tokens than bytes
    counter = TokenCounter("gpt-4o", loader=lambda name: o200k)
    n = counter.count("a" * 1_000_000)
    assert 0 < n <= 1_000_000
