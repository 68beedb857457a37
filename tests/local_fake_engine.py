"""A scripted model for the real model host process (``host_main.main(Scripted)``): tests of the
process protocol that need no llama.cpp. The request's last user message is the script: pieces
separated by ``|``; ``~`` sleeps 0.1 s, ``!`` fails the reply (a ProviderError), ``$`` ends it
with a SIGSEGV of the whole process."""

from __future__ import annotations

import os
import signal
import time

from agentcli.errors import ProviderError
from agentcli.messages import Message, ResponseDone, TextDelta, TextPart, Usage

BOOT = ("import sys, json\n"
        "sys.path[:] = json.loads(sys.argv[1])\n"
        "from local_fake_engine import Scripted\n"
        "from agentcli.providers.local.host_main import main\n"
        "main(Scripted)\n")


class Scripted:
    def __init__(self, config, warn, should_stop) -> None:
        self.should_stop = should_stop

    def load(self):
        return self

    def n_ctx(self) -> int:
        return 4096

    def repack_used(self) -> None:
        return None

    def stream(self, messages, tools, system):
        text = []
        for piece in messages[-1].text.split("|"):
            if piece == "~":
                time.sleep(0.1)
            elif piece == "!":
                raise ProviderError("local model failed while generating: scripted")
            elif piece == "$":
                os.kill(os.getpid(), signal.SIGSEGV)
            else:
                text.append(piece)
                yield TextDelta(piece)
        yield ResponseDone(Message("assistant", (TextPart("".join(text)),)), "end_turn",
                           Usage.reported(1, len(text)))
