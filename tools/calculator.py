"""calculator: arithmetic by walking a whitelist of ``ast`` nodes (no eval/exec anywhere).

Bounded so every input finishes in well under a second: at most 2000 characters and 100 levels of
nesting; integers up to 4000 digits (an exponent is checked before it is computed);
factorial/comb/perm up to 1000; floats must stay finite.
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


def _pow(base: Any, exp: Any) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if exp * math.log2(abs(base)) > MAX_INT_BITS:
            raise CalculatorError(f"result too large: {base}**{exp} has more than about 3900 "
                                  "digits")
    if isinstance(exp, int) and exp < 0 and isinstance(base, int) and abs(base) > 1:
        if -exp * math.log2(abs(base)) > 1100:
            return 0.0
    try:
        result = base ** exp
    except ZeroDivisionError as e:
        raise CalculatorError("division by zero (0 to a negative power)") from e
    if isinstance(result, complex):
        raise CalculatorError("the result is a complex number (negative base, fractional "
                              "exponent)")
    return result


def _div(a: Any, b: Any) -> Any:
    return a / b


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _div,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _bounded(fn: Callable[..., Any], limit: int = MAX_COMBINATORIC) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        for a in args:
            if isinstance(a, int) and abs(a) > limit:
                raise CalculatorError(f"{fn.__name__}() is limited to arguments up to {limit}")
        return fn(*args)

    wrapped.__name__ = fn.__name__
    return wrapped


def _log(x: Any, base: Any = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Any, n: Any = None) -> Any:
    if n is not None and (not isinstance(n, int) or abs(n) > 100):
        raise CalculatorError("round() digits must be an integer between -100 and 100")
    return round(x) if n is None else round(x, n)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": _log, "ln": math.log, "log10": math.log10,
    "log2": math.log2, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
    "acos": math.acos, "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh,
    "cosh": math.cosh, "tanh": math.tanh, "degrees": math.degrees, "radians": math.radians,
    "hypot": math.hypot, "abs": abs, "fabs": math.fabs, "round": _round, "floor": math.floor,
    "ceil": math.ceil, "trunc": math.trunc, "min": min, "max": max,
    "factorial": _bounded(math.factorial), "gcd": math.gcd,
    "comb": _bounded(math.comb), "perm": _bounded(math.perm),
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
            if type(node.op) not in _BINARY:
                raise CalculatorError(f"operator {type(node.op).__name__} is not allowed "
                                      "(use + - * / // % **)")
            chain.append(node)
            node = node.left
        value = _eval(node, depth + 1)
        for link in reversed(chain):
            value = _check_int(_BINARY[type(link.op)](value, _eval(link.right, depth + 1)))
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
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
        return _check_int(_FUNCTIONS[node.func.id](*args))
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
