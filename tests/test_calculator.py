"""calculator: correct results, and every hostile input refused or bounded: counted, not timed
(every operation goes through ``calculator._compute``; a refusal computes nothing big)."""

from __future__ import annotations

import json
import math
import sys

import pytest

from agentcli.toolrun.approval import build_approver
from agentcli.config import load_settings
from agentcli.toolrun.executor import Executor
from agentcli.messages import ToolCall
from agentcli.toolrun.manifest import load_tools


@pytest.fixture(scope="module")
def calc():
    import os
    import tempfile

    os.environ.setdefault("AGENTCLI_HOME", tempfile.mkdtemp())
    return load_tools(load_settings(), warn=lambda line: None)["calculator"].function()


GOOD = [
    ("0.5*2+0.5*3", 2.5),
    ("-log(0.9)", 0.10536051565782628),
    ("37*91", 3367),
    ("2**10", 1024),
    ("2^10", 1024),
    ("7 // 2", 3),
    ("7 % 3", 1),
    ("-7 / 2", -3.5),
    ("(1 + 2) * (3 + 4)", 21),
    ("sqrt(16) + abs(-2)", 6.0),
    ("sin(pi/2)", 1.0),
    ("log(8, 2)", 3.0),
    ("log10(1000)", 3.0),
    ("e", math.e),
    ("factorial(20)", 2432902008176640000),
    ("round(2.675, 2)", 2.67),
    ("max(1, 5, 3) - min(4, 2)", 3),
    ("1e3 + 1", 1001.0),
    ("--3", 3),
    ("+3", 3),
    ("10**-3", 0.001),
    ("2**-2000", 0.0),
    ("1" + "+1" * 999, 1000),  # long but flat: fine
    ("(9**9)**9", 9 ** 81),
    ("(" * 150 + "1" + ")" * 150, 1),  # parentheses alone add no depth
]


@pytest.mark.parametrize("expr,expected", GOOD)
def test_correct_results(calc, expr, expected):
    got = calc(expression=expr)
    if isinstance(expected, float):
        assert math.isclose(float(got), expected, rel_tol=1e-12)
    else:
        assert got == str(expected)


def test_minus_log_approximately(calc):
    assert abs(float(calc(expression="-log(0.9)")) - 0.1054) < 1e-4


REFUSED = [
    ("__import__('os')", "not available"),
    ("__import__('os').system('echo pwned')", "only named math functions"),
    ("(1).real", "Attribute"),
    ("().__class__.__bases__[0].__subclasses__()", "only named math functions"),
    ("lambda: 1", "Lambda"),
    ("[x for x in range(10**9)]", "not allowed"),
    ("9**9**9", "too large"),
    ("2**2**2**2**2", "too large"),
    ("10**100000", "too large"),
    ("99999999999**99999999999", "too large"),
    ("10**4000 * 10**4000", "too large"),
    ("2.0**100000", "too large"),
    ("1e308 * 10", "too large"),
    ("exp(100000)", "too large"),
    ("factorial(100000)", "limited"),
    ("comb(10**6, 500000)", "limited"),
    ("1/0", "division by zero"),
    ("1 // 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("sqrt(-1)", "math"),
    ("(-8) ** (1/3)", "complex"),
    ("sqrt(" * 300 + "4" + ")" * 300, "nested"),
    ("-" * 1500 + "1", "nested"),
    ("(" * 900 + "1" + ")" * 900, "nested"),
    ("1" * 3000, "longer than"),
    ("x + 1", "unknown name"),
    ("'a' * 3", "only numbers"),
    ("True + 1", "only numbers"),
    ("1 if 1 else 2", "not allowed"),
    ("1 << 100000", "not allowed"),
    ("1 < 2", "not allowed"),
    ("open('/etc/passwd')", "not available"),
    ("sqrt(x=4)", "positional"),
    ("1 +", "not a valid expression"),
    ("", "give an expression"),
    ("1j * 2", "only numbers"),
]


@pytest.fixture
def work(calc, monkeypatch):
    """Every operation the calculator runs: (function name, arguments)."""
    module = sys.modules[calc.__module__]
    done: list[tuple[str, tuple]] = []
    real = module._compute

    def counting(fn, *args):
        done.append((getattr(fn, "__name__", repr(fn)), args))
        return real(fn, *args)

    monkeypatch.setattr(module, "_compute", counting)
    return done


def bits(value) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


@pytest.mark.parametrize("expr,words", REFUSED)
def test_refused_without_big_work(calc, work, expr, words):
    with pytest.raises(ValueError) as e:
        calc(expression=expr)
    assert words in str(e.value)
    module = sys.modules[calc.__module__]
    assert len(work) <= 10, work  # a handful of operations at most, whatever the input
    for name, args in work:
        assert all(bits(a) <= module.MAX_INT_BITS for a in args), (name, args)
        if name == "pow" and all(isinstance(a, int) for a in args) and args[1] > 0:
            assert args[1] * math.log2(max(abs(args[0]), 2)) <= module.MAX_INT_BITS
        if name in ("factorial", "comb", "perm"):
            assert max(abs(a) for a in args) <= module.MAX_COMBINATORIC


@pytest.mark.parametrize("expr,computed", [
    ("9**9**9", [("pow", (9, 9))]),              # the tower's top is computed, then refused
    ("10**100000", []),
    ("99999999999**99999999999", []),
    ("factorial(100000)", []),
    ("comb(10**6, 500000)", [("pow", (10, 6))]),
    ("(" * 900 + "1" + ")" * 900, []),
    ("__import__('os')", []),
])
def test_refusals_count_exactly_what_was_computed(calc, work, expr, computed):
    with pytest.raises(ValueError):
        calc(expression=expr)
    assert work == computed


def test_the_largest_results_pass_whole_through_the_executor():
    """The README allows integers below 2**13000 (3,914 digits): the output cap must not cut
    them (it did at output_cap 2000)."""
    s = load_settings()
    ex = Executor(load_tools(s, warn=lambda line: None), build_approver(s, yes=False,
                                                                         prompter=None))
    for expr, value in [("-(2**12999 + (2**12999 - 1))", -(2 ** 13000 - 1)),
                        ("factorial(1000)", math.factorial(1000))]:
        r = ex.execute(ToolCall("1", "calculator", json.dumps({"expression": expr}))).result
        assert not r.is_error and r.content == str(value), r.content[-200:]
    assert len(str(-(2 ** 13000 - 1))) == 3915


def test_no_eval_or_exec_in_the_source():
    from pathlib import Path

    src = (Path(__file__).resolve().parent.parent / "tools" / "calculator.py").read_text()
    assert "eval(" not in src.replace("_eval(", "") and "exec(" not in src
    assert "compile(" not in src


def test_through_the_executor_without_asking():
    s = load_settings()
    tools = load_tools(s, warn=lambda line: None)
    ex = Executor(tools, build_approver(s, yes=False, prompter=None))
    r = ex.execute(ToolCall("1", "calculator", json.dumps({"expression": "0.5*2+0.5*3"}))).result
    assert (r.content, r.is_error) == ("2.5", False)
    bad = ex.execute(ToolCall("2", "calculator", json.dumps({"expression": "9**9**9"}))).result
    assert bad.is_error and "too large" in bad.content
