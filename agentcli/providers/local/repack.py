"""llama.cpp's weight repacking, on or off: the one model parameter llama-cpp-python lacks.

On Intel CPUs with AMX (llama.cpp's system info says ``AMX_INT8 = 1``), the extra buffer types
that repack weights at load time (AMX, and the CPU's own ``CPU_REPACK``) crash in ``decode``
(ggml-org/llama.cpp#20824, open). ``llama_model_params.use_extra_bufts = false`` loads the
weights as they are in the file, and the same model answers normally.

llama-cpp-python (0.3.15 and later) has that field in its ``llama_model_params`` struct but no
``Llama(...)`` argument for it, and ``Llama.__init__`` builds the struct itself, with
``llama_cpp.llama_cpp.llama_model_default_params()``, then loads the model at once. So the
setting is made by wrapping that function while a ``Llama`` is built (``model_params``), and
checked on the struct the model was loaded with (``Llama.model_params``) afterwards: a version
that builds its parameters some other way fails with one clear line instead of crashing later.

Unset (``repack`` absent from the profile), it is off where the crash can happen — llama.cpp
was built with AMX (its system info says ``AMX_INT8 = 1``) or the CPU has AMX (``amx_int8`` in
``/proc/cpuinfo``) — and on elsewhere: measured on a CPU without AMX (``bench/bench_local.py
--part repack``), turning it off costs nothing for the bundled Q4_1 model (llama.cpp repacks no
Q4_1 tensor there) or a Q8_0 copy, but a Q4_0 copy evaluates prompts 1.8x slower and generates
11% slower.

Imported only where llama_cpp is loaded: the model host process (``host_main``) and the tests'
wrapper that starts llama-cpp-python's server (``tests/llama_server_norepack.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ...errors import ModelLoadError

FIELD = "use_extra_bufts"
SINCE = "0.3.15"  # the first llama-cpp-python whose llama_model_params has FIELD
UPGRADE_HINT = (f"upgrade it (pip install -U 'llama-cpp-python>={SINCE}'), or set "
                "repack: true in the local profile to load without turning repacking off")


def _bindings() -> Any:
    import llama_cpp.llama_cpp as bindings

    return bindings


def supported() -> bool:
    """Does this llama-cpp-python's ``llama_model_params`` have the repacking switch?"""
    return any(name == FIELD for name, *_ in _bindings().llama_model_params._fields_)


def amx_present(system_info: str, cpuinfo: str) -> bool:
    """Could llama.cpp's AMX path run here: built with it, or a CPU that has it?"""
    return "AMX_INT8 = 1" in system_info or " amx_int8" in cpuinfo


def resolve(setting: bool | None) -> bool:
    """The profile's ``repack`` (None: unset) as it applies on this machine."""
    if setting is not None:
        return setting
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    system_info = _bindings().llama_print_system_info().decode("utf-8", "replace")
    return not amx_present(system_info, cpuinfo)


def _version() -> str:
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "?"))


@contextlib.contextmanager
def model_params(repack: bool) -> Iterator[None]:
    """While this is open, every ``llama_model_params`` llama-cpp-python builds with its
    defaults has ``use_extra_bufts = repack``. With ``repack`` true and an old llama-cpp-python
    nothing needs changing; with it false there, ModelLoadError (one line)."""
    if not supported():
        if repack:
            yield
            return
        raise ModelLoadError(
            f"llama-cpp-python {_version()} cannot turn off llama.cpp's weight repacking "
            f"(which crashes on CPUs with AMX); it needs {SINCE} or newer", hint=UPGRADE_HINT)
    original = _set_default(repack)
    try:
        yield
    finally:
        _bindings().llama_model_default_params = original


def check_loaded(llm: Any, repack: bool) -> None:
    """The struct ``llm`` was loaded with really has the setting (``Llama.model_params`` is
    the object handed to ``llama_model_load_from_file``)."""
    params = getattr(llm, "model_params", None)
    if repack and not supported():
        return  # an old llama-cpp-python: repacking is on, as asked
    if params is None or bool(getattr(params, FIELD)) != repack:
        raise ModelLoadError(
            f"llama-cpp-python {_version()} builds its model parameters in a way agentcli "
            f"cannot change: repack: {str(repack).lower()} did not reach llama.cpp",
            hint=UPGRADE_HINT)


def off_for_every_model() -> None:
    """For a process that only serves models (the server wrapper): every model it loads from
    now on is loaded with repacking off."""
    if not supported():
        raise ModelLoadError(
            f"llama-cpp-python {_version()} cannot turn off llama.cpp's weight repacking; it "
            f"needs {SINCE} or newer", hint=UPGRADE_HINT)
    _set_default(False)


def _set_default(repack: bool) -> Any:
    """Make llama-cpp-python's default model parameters carry ``repack``; returns the
    function it had, to put back."""
    bindings = _bindings()
    original = bindings.llama_model_default_params

    def with_repacking() -> Any:
        params = original()
        setattr(params, FIELD, repack)
        return params

    bindings.llama_model_default_params = with_repacking
    return original
