"""calculator: arithmetic by walking a whitelist of ``ast`` nodes (no eval/exec anywhere).

Bounded so every input finishes in well under a second: at most 2000 characters and 100 levels of
nesting; integers below 2**13000 (3,914 digits; an exponent is checked before the power is
computed); factorial/comb/perm up to 1000; floats must stay finite. Every operation runs through
``_compute`` after its checks, so tests count the work a refusal did instead of timing it.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

MAX_LENGTH = 2000
MAX_DEPTH = 100
MAX_INT_BITS = 13_000  # about 3900 decimal digits: under Python's 4300-digit str() limit
MAX_COMBINATORIC = 1000


class CalculatorError(ValueError):
    """A refused or failed expression; the message says why."""


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result too large (more than about 3900 digits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is too large or not a number (overflows a float)")
    return value


def _compute(fn: Callable[..., Any], *args: Any) -> Any:
    """Every arithmetic operation and math function runs here, only after its bounds were
    checked (the tests count what reaches this point: a refusal computes nothing big)."""
    return fn(*args)


def _pow(base: Any, exp: Any) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if exp * math.log2(abs(base)) > MAX_INT_BITS:
            raise CalculatorError(f"result too large: {base}**{exp} has more than about 3900 "
                                  "digits")
    if isinstance(exp, int) and exp < 0 and isinstance(base, int) and abs(base) > 1:
        if -exp * math.log2(abs(base)) > 1100:
            return 0.0
    try:
        result = _compute(operator.pow, base, exp)
    except ZeroDivisionError as e:
        raise CalculatorError("division by zero (0 to a negative power)") from e
    if isinstance(result, complex):
        raise CalculatorError("the result is a complex number (negative base, fractional "
                              "exponent)")
    return result


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _combinatoric(name: str, args: list[Any]) -> None:
    for a in args:
        if isinstance(a, int) and abs(a) > MAX_COMBINATORIC:
            raise CalculatorError(f"{name}() is limited to arguments up to {MAX_COMBINATORIC}")


def _round_digits(name: str, args: list[Any]) -> None:
    n = args[1] if len(args) > 1 else None
    if n is not None and (not isinstance(n, int) or abs(n) > 100):
        raise CalculatorError("round() digits must be an integer between -100 and 100")


def _log(x: Any, base: Any = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, the check its arguments pass before it runs)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[[str, list[Any]], None] | None]] = {
    "sqrt": (math.sqrt, None), "exp": (math.exp, None), "log": (_log, None),
    "ln": (math.log, None), "log10": (math.log10, None), "log2": (math.log2, None),
    "sin": (math.sin, None), "cos": (math.cos, None), "tan": (math.tan, None),
    "asin": (math.asin, None), "acos": (math.acos, None), "atan": (math.atan, None),
    "atan2": (math.atan2, None), "sinh": (math.sinh, None), "cosh": (math.cosh, None),
    "tanh": (math.tanh, None), "degrees": (math.degrees, None), "radians": (math.radians, None),
    "hypot": (math.hypot, None), "abs": (abs, None), "fabs": (math.fabs, None),
    "round": (round, _round_digits), "floor": (math.floor, None), "ceil": (math.ceil, None),
    "trunc": (math.trunc, None), "min": (min, None), "max": (max, None),
    "factorial": (math.factorial, _combinatoric), "gcd": (math.gcd, None),
    "comb": (math.comb, _combinatoric), "perm": (math.perm, _combinatoric),
}


def _eval(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalculatorError(f"only numbers are allowed, not {value!r}")
        return _check_int(value)
    if isinstance(node, ast.BinOp):
        # a left-leaning chain (1+2+3+...) is walked iteratively: only real nesting counts
        chain: list[ast.BinOp] = []
        while isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY and not isinstance(node.op, ast.Pow):
                raise CalculatorError(f"operator {type(node.op).__name__} is not allowed "
                                      "(use + - * / // % **)")
            chain.append(node)
            node = node.left
        value = _eval(node, depth + 1)
        for link in reversed(chain):
            right = _eval(link.right, depth + 1)
            op = type(link.op)
            value = _check_int(_pow(value, right) if op is ast.Pow
                               else _compute(_BINARY[op], value, right))
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _compute(_UNARY[type(node.op)], _eval(node.operand, depth + 1))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name '{node.id}' (constants: {', '.join(_CONSTANTS)})")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            if not isinstance(node.func, ast.Name):
                raise CalculatorError("only named math functions can be called, e.g. sqrt(2)")
            name = node.func.id
            raise CalculatorError(f"function '{name}' is not available; functions: "
                                  f"{', '.join(sorted(_FUNCTIONS))}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise CalculatorError("functions take plain positional arguments only")
        args = [_eval(a, depth + 1) for a in node.args]
        fn, check = _FUNCTIONS[node.func.id]
        if check is not None:
            check(node.func.id, args)
        return _check_int(_compute(fn, *args))
    raise CalculatorError(f"{type(node).__name__} is not allowed in an arithmetic expression "
                          "(only numbers, + - * / // % **, parentheses and math functions)")


def evaluate(expression: str) -> int | float:
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("give an expression, e.g. 2*(3+4)")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_LENGTH} characters")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not a valid expression: {e.msg}") from e
    except (RecursionError, MemoryError, ValueError) as e:
        raise CalculatorError("expression nested too deeply") from e
    try:
        return _eval(tree, 0)
    except CalculatorError:
        raise
    except ZeroDivisionError as e:
        raise CalculatorError("division by zero") from e
    except OverflowError as e:
        raise CalculatorError("result too large (overflows a float)") from e
    except RecursionError as e:
        raise CalculatorError("expression nested too deeply") from e
    except (ValueError, TypeError) as e:
        raise CalculatorError(f"math error: {e}") from e


def format_number(value: int | float) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def run(expression: str) -> str:
    return format_number(evaluate(expression))
