"""The floor of a one-shot round trip over the Anthropic Messages API (official SDK).

One streamed ``messages.create(stream=True)`` request (the call agentcli makes), each text delta
written and flushed to stdout as it arrives.

    python bench/floor_anthropic.py BASE_URL MODEL PROMPT
"""

import sys

import anthropic

base_url, model, prompt = sys.argv[1:4]
client = anthropic.Anthropic(base_url=base_url, api_key="sk-bench")
stream = client.messages.create(model=model, max_tokens=4096, stream=True,
                                messages=[{"role": "user", "content": prompt}])
for event in stream:
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        sys.stdout.write(event.delta.text)
        sys.stdout.flush()
sys.stdout.write("\n")
