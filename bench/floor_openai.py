"""The floor of a one-shot round trip: the least any client of the official openai SDK does.

One streamed Chat Completions request (with ``stream_options.include_usage``, as agentcli sends),
each text delta written and flushed to stdout as it arrives.

    python bench/floor_openai.py BASE_URL MODEL PROMPT
"""

import sys

import openai

base_url, model, prompt = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key="sk-bench")
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": prompt}], stream=True,
    stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        sys.stdout.write(chunk.choices[0].delta.content)
        sys.stdout.flush()
sys.stdout.write("\n")
