"""The config keys conversations add (save, roles, prices, context_windows, a profile's
context_window): checked with the file and key named; and costs, which are never invented."""

from __future__ import annotations

import pytest

from agentcli.config import load_settings, settings_as_dict
from agentcli.errors import ConfigError
from agentcli.messages import Usage
from agentcli.agent.pricing import cost
from agentcli.sessions.config import parse


@pytest.mark.parametrize("text, key", [
    ("save: 1\n", "save"),
    ("roles: {reviewer: 3}\n", "roles.reviewer"),
    ("roles: {reviewer: '  '}\n", "roles.reviewer"),
    ("prices: {gpt-4o: 2.5}\n", "prices.gpt-4o"),
    ("prices: {gpt-4o: {input: 2.5}}\n", "prices.gpt-4o"),
    ("prices: {gpt-4o: {input: -1, output: 1}}\n", "prices.gpt-4o.input"),
    ("prices: {gpt-4o: {input: true, output: 1}}\n", "prices.gpt-4o.input"),
    ("context_windows: {llama3.2: 100}\n", "context_windows.llama3.2"),
    ("context_windows: {llama3.2: '8k'}\n", "context_windows.llama3.2"),
    ("providers: {p: {type: openai, context_window: 0}}\n", "providers.p.context_window"),
    ("providers: {p: {type: openai, context_window: big}}\n", "providers.p.context_window"),
])
def test_bad_values_name_the_file_and_key(tmp_path, text, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert f"at key '{key}'" in e.value.message and str(cfg) in e.value.message


def test_good_values_load_and_show(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("save: false\nroles: {r: 'Be r.'}\n"
                   "prices: {'gpt-4*': {input: 2, output: 8}}\ncontext_windows: {m: 4096}\n"
                   "providers: {p: {type: openai, context_window: 9000}}\n")
    settings = load_settings(cfg)
    assert settings.sessions.save is False and settings.providers["p"].context_window == 9000
    shown = settings_as_dict(settings)
    assert shown["prices"] == {"gpt-4*": {"input": 2.0, "output": 8.0}}
    assert shown["roles"] == {"r": "Be r."} and shown["context_windows"] == {"m": 4096}
    assert load_settings(None).sessions.save is True  # saving is on by default


def test_cost_is_shown_only_when_every_model_used_has_a_price():
    table = parse({"prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6},
                              "gpt-4.1*": {"input": 2, "output": 8}}}, None)
    assert table.price("gpt-4.1-mini").input == 0.4  # the exact name beats the glob
    assert table.price("gpt-4.1").output == 8
    one = cost(table, {"gpt-4.1-mini": Usage.reported(1_000_000, 1_000_000)})
    assert one.usd == pytest.approx(2.0) and one.complete and one.describe() == "$2.00"
    assert cost(table, {"gpt-4.1-mini": Usage(1000, 10, 1), "claude-x": Usage(5, 5, 1)}) is None
    partial = cost(table, {"gpt-4.1": Usage(1000, 100, 2, 1)})
    assert not partial.complete and partial.describe().startswith("at least $0.0028")
    assert cost(table, {}) is None


def test_cache_reads_and_writes_are_priced_at_their_own_rates():
    table = parse({"prices": {
        "claude-*": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
        "gpt-5*": {"input": 1.25, "output": 10}}}, None)
    # 1M input of which 800k read from the cache and 100k written to it, 0 output
    usage = Usage.reported(1_000_000, 0, cached=800_000, cache_write=100_000)
    spent = cost(table, {"claude-sonnet-4-6": usage})
    assert round(spent.usd, 6) == round(0.1 * 3 + 0.8 * 0.3 + 0.1 * 3.75, 6)
    # no cache prices in the table: cached tokens cost what input costs (never invented)
    assert round(cost(table, {"gpt-5.6": usage}).usd, 6) == 1.25
    with pytest.raises(ConfigError, match="cache_read"):
        parse({"prices": {"m": {"input": 1, "output": 2, "cached": 1}}}, None)


def test_a_cost_limit_counts_unreported_usage_at_the_estimate_as_a_lower_bound():
    from agentcli.agent.pricing import CostLimit
    from agentcli.sessions.config import Price

    limit = CostLimit(0.01, Price(input=10, output=10))  # $0.00001 a token
    assert limit.before(500) is None  # $0.005 fits
    assert limit.after(Usage.unknown()) is None  # counted at its estimate: $0.005
    assert limit.before(600) is not None  # $0.005 + $0.006 would cross $0.01
    line = limit.after(Usage.unknown())
    assert line and "at least $0.011" in line and "--max-cost limit $0.0100" in line
