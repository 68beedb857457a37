"""The floor of a one-shot round trip over OpenAI's Responses API: the least any client of the
official openai SDK does.

One streamed ``responses.create(stream=True)`` request, each text delta written and flushed to
stdout as it arrives.

    python bench/floor_responses.py BASE_URL MODEL PROMPT
"""

import sys

import openai

base_url, model, prompt = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key="sk-bench")
stream = client.responses.create(model=model, input=prompt, stream=True)
for event in stream:
    if event.type == "response.output_text.delta":
        sys.stdout.write(event.delta)
        sys.stdout.flush()
sys.stdout.write("\n")
