"""Start llama-cpp-python's OpenAI-compatible server with llama.cpp's weight repacking off.

    python tests/llama_server_norepack.py <the server's own arguments>

The server is third-party code: it builds its model parameters inside ``Llama(...)``, which has
no argument for ``use_extra_bufts``, and on CPUs with AMX its weight repacking segfaults in
``decode`` (ggml-org/llama.cpp#20824). So this wrapper applies agentcli's own fix
(``agentcli.providers.local.repack``: every model loaded from now on has repacking off), then
runs the server's ``main`` unchanged.
"""

from __future__ import annotations

import sys

from agentcli.providers.local import repack


def main() -> None:
    repack.off_for_every_model()
    from llama_cpp.server.__main__ import main as server_main

    sys.argv[0] = "python -m llama_cpp.server"
    server_main()


if __name__ == "__main__":
    main()
