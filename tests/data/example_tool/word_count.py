"""word_count: an example agentcli tool (YAML manifest + this module)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any


def run(text: str, top: int = 5, context: Any = None) -> dict[str, Any]:
    # `context` is optional: agentcli passes it when the function has a parameter of that name.
    # context.options is this tool's section of the config: tools.options.word_count
    options = context.options if context is not None else {}
    words = re.findall(r"[\w']+", text)
    if options.get("ignore_case", True):
        words = [w.lower() for w in words]
    return {
        "words": len(words),
        "lines": len(text.splitlines()),
        "characters": len(text),
        "most_common": Counter(words).most_common(top),
    }
