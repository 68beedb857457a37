"""The conversation has one owner: its methods change it, listeners (the session store) render
its events, and what it remembers survives a resume (`ask -c`)."""

from __future__ import annotations

import json

from scripted import ScriptedProvider, fail, reply
from typer.testing import CliRunner

from agentcli import runtime
from agentcli.agent.conversation import Conversation
from agentcli.agent.loop import Agent
from agentcli.cli.app import build_app
from agentcli.config import ProviderProfile
from agentcli.errors import ProviderConnectionError
from agentcli.messages import Message, TextPart, Usage
from agentcli.sessions.recorder import SessionRecorder
from agentcli.sessions.store import open_store


class NoTools:
    def definitions(self):
        return []


def test_the_conversation_is_read_only_to_everyone_else():
    c = Conversation([Message.user("hi")])
    assert isinstance(c.messages, tuple)  # no list to edit behind its back
    seen = []
    c.subscribe(seen.append)
    c.append(Message("assistant", (TextPart("hello"),)))
    assert c.truncate(1) == [Message("assistant", (TextPart("hello"),))]
    assert c.truncate(5) == []  # nothing left: no event
    assert [e.kind for e in seen] == ["history_appended", "history_truncated"]


def test_clear_starts_a_new_conversation_with_a_new_id_and_zero_totals():
    c = Conversation([Message.user("hi")], system="be brief", usage=Usage.reported(5, 5))
    c.last_turn = Usage.reported(5, 5)
    old = c.id
    assert c.clear() == 1
    assert c.id != old and c.messages == () and c.usage == Usage()
    assert c.last_turn is None and c.system == "be brief"  # the system prompt stays


def test_the_agent_keys_the_providers_prompt_cache_on_the_conversation_and_its_session(tmp_path):
    provider = ScriptedProvider([reply("one")])
    conversation = Conversation()
    recorder = SessionRecorder(tmp_path, print)
    recorder.attach(conversation)
    list(Agent(provider, NoTools(), conversation=conversation).run(Message.user("hi")))
    assert provider.cache_key == conversation.id == recorder.session_id


def test_a_failed_request_is_counted_as_one_request_of_unknown_usage():
    provider = ScriptedProvider([reply("fine"), fail(ProviderConnectionError("down"))])
    agent = Agent(provider, NoTools())
    list(agent.run(Message.user("one")))
    done = list(agent.run(Message.user("two")))[-1]
    assert done.usage == Usage.unknown()
    assert agent.usage.requests == 2 and agent.usage.unreported == 1
    assert "unknown usage" in agent.usage.describe()


def test_ask_json_of_a_failed_request_says_usage_is_unknown_and_names_the_session(
        fake_server, monkeypatch):
    from fake_server import error

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_server.script(error(400, "slow down"))
    result = CliRunner().invoke(build_app(), [
        "ask", "--json", "-p", "openai", "--base-url", fake_server.openai_base_url,
        "-m", "test-model", "--no-tools", "hello there"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["usage"]["complete"] is False and data["usage"]["input_tokens"] is None
    assert data["session"]  # the prompt was saved before the request
    store = open_store(runtime.load(runtime.RunOptions()).data_dir, create=False)
    [stored] = store.messages(data["session"], include_dropped=True)
    assert stored.message.text == "hello there" and stored.dropped
    shown = CliRunner().invoke(build_app(), ["sessions", "show", data["session"][:8]])
    assert "You (not answered: " in shown.stdout and "slow down" in shown.stdout
    assert "hello there" in shown.stdout


def test_a_conversation_that_moved_to_the_responses_api_resumes_there(tmp_path):
    provider = ScriptedProvider([reply("one")])
    provider.wire = "openai_responses"  # as after the Chat Completions 400 retry
    conversation = Conversation()
    recorder = SessionRecorder(tmp_path, print)
    recorder.attach(conversation)
    list(Agent(provider, NoTools(), conversation=conversation).run(Message.user("hi")))
    recorder.close()
    resumed = SessionRecorder(tmp_path, print).load(None)
    assert resumed.info.state["wire"] == "openai_responses"
    auto = ProviderProfile(name="openai", type="openai", api="auto")
    assert runtime.settled_profile(auto, resumed).api == "responses"
    chat = ProviderProfile(name="openai", type="openai", api="chat")  # an explicit choice wins
    assert runtime.settled_profile(chat, resumed).api == "chat"
