"""The floor of a tool chain: a bare openai SDK loop making the same calls as agentcli.

Streamed requests offering one ``calculator`` tool; each call's arguments are assembled from the
deltas, answered in-process (the expression is ``A+B``), and sent back with the whole history,
until the model answers with text, which is written to stdout.

    python bench/floor_chain.py BASE_URL MODEL PROMPT
"""

import json
import sys

import openai

TOOLS = [{"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                   "required": ["expression"]}}}]

base_url, model, prompt = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key="sk-bench")
messages = [{"role": "user", "content": prompt}]
while True:
    text, calls = [], {}
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=TOOLS,
                                                stream=True,
                                                stream_options={"include_usage": True}):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        if delta.content:
            text.append(delta.content)
            sys.stdout.write(delta.content)
            sys.stdout.flush()
        for piece in delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] = piece.function.name or call["name"]
            call["arguments"] += piece.function.arguments or ""
    if not calls:
        break
    messages.append({"role": "assistant", "content": "".join(text) or None, "tool_calls": [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls.values()]})
    for c in calls.values():
        a, _, b = json.loads(c["arguments"])["expression"].partition("+")
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": str(int(a) + int(b))})
sys.stdout.write("\n")
