"""Tool arguments checked against their JSON Schema without importing jsonschema, for the schemas
most tools have.

Importing jsonschema (with referencing, rpds, attrs and its format libraries) costs 40-140 ms
of CPU, once per run, at the first tool call. ``compile_schema`` takes the subset that the
built-in tools, typical plugins and MCP servers use and returns a validator for it; for any other
schema it returns None, and the caller uses jsonschema itself. Within the subset the verdict and
every error (its path and its message) are jsonschema's own, keyword for keyword: the same
semantics (drafts 6, 7, 2019-09 and 2020-12 agree on this subset; a ``$schema`` naming any other
draft, or an unknown one, is left to jsonschema), the same messages, in the same order.
``tests/test_argcheck.py`` compares both on a corpus of schemas and arguments.

The subset: ``type``, ``properties``, ``required``, ``additionalProperties`` (true, false or a
schema), ``items`` (one schema), ``enum``, ``const``, ``minLength``/``maxLength``, ``pattern``,
``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` (numbers),
``minItems``/``maxItems``, ``minProperties``/``maxProperties``, ``anyOf``, ``allOf``, boolean
subschemas, and ``format`` (an annotation: jsonschema asserts no format unless given a format
checker, and agentcli gives none). Keywords no draft defines (``description``, ``title``,
``default``, ``x-…``) are ignored, as jsonschema ignores them. Any other keyword jsonschema
knows (``$ref``, ``oneOf``, ``not``, ``if``, ``multipleOf``, ``uniqueItems``,
``patternProperties``, ``prefixItems``, ``dependentRequired``…), or a known one with a value
outside the plain forms above (which jsonschema could read its own way or fail on), sends the
whole schema to jsonschema.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["ArgError", "LiteValidator", "compile_schema", "equal"]

DRAFTS = frozenset(f"{uri}{end}" for end in ("", "#") for uri in (
    "http://json-schema.org/draft-06/schema", "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema", "https://json-schema.org/draft/2020-12/schema"))
"""``$schema`` values whose semantics this module follows (absent: jsonschema's latest draft)."""

FALLBACK = frozenset((
    "$ref", "$dynamicRef", "$recursiveRef", "additionalItems", "contains", "dependencies",
    "dependentRequired", "dependentSchemas", "if", "multipleOf", "not", "oneOf",
    "patternProperties", "prefixItems", "propertyNames", "unevaluatedItems",
    "unevaluatedProperties", "uniqueItems"))
"""Keywords jsonschema implements (in some draft) that this module leaves to it."""

TYPES: dict[str, Callable[[Any], bool]] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool))
    or (isinstance(x, float) and x.is_integer()),
    "null": lambda x: x is None,
    "number": lambda x: isinstance(x, numbers.Number) and not isinstance(x, bool),
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}

Path = tuple[Any, ...]
Check = Callable[[Any, Path], Iterator["ArgError"]]


class _Unsupported(Exception):
    """The schema is outside the subset: jsonschema checks it."""


@dataclass(frozen=True)
class ArgError:
    """One problem, as jsonschema's ValidationError shows it: ``path`` (keys and indexes from
    the root of the arguments) and ``message``. The message is made when asked for: a huge
    argument's repr is built only for the error that is shown."""

    path: Path
    describe: Callable[[], str]

    @property
    def message(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class LiteValidator:
    """A compiled schema; ``iter_errors`` as jsonschema's validators have it."""

    schema: Any
    check: Check

    def iter_errors(self, instance: Any) -> Iterator[ArgError]:
        return self.check(instance, ())


def compile_schema(schema: Any) -> LiteValidator | None:
    """A validator for ``schema``, or None when it is outside the subset (use jsonschema)."""
    if isinstance(schema, dict) and "$schema" in schema and schema["$schema"] not in DRAFTS:
        return None
    try:
        return LiteValidator(schema, _compile(schema, root=True))
    except _Unsupported:
        return None


def equal(one: Any, two: Any) -> bool:
    """jsonschema's ``_utils.equal``: ``True`` is not ``1``, in sequences and mappings too."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(k in two and equal(v, two[k])
                                            for k, v in one.items())
    return bool(_unbool(one) == _unbool(two))


_TRUE, _FALSE = object(), object()


def _unbool(x: Any) -> Any:
    return _TRUE if x is True else _FALSE if x is False else x


def _compile(schema: Any, root: bool = False, keyed: bool = False) -> Check:
    """``keyed``: the subschema of one property or item (its path ends with that key)."""
    if schema is True:
        return lambda instance, path: iter(())
    if schema is False:
        def nothing(instance: Any, path: Path) -> Iterator[ArgError]:
            # jsonschema reports a false subschema at its parent's path (its ``descend``
            # returns before adding the key): the same here, so both say the same thing
            yield ArgError(path[:-1] if keyed else path,
                           lambda: f"False schema does not allow {instance!r}")
        return nothing
    if not isinstance(schema, dict):
        raise _Unsupported()
    if not root and "$schema" in schema:
        raise _Unsupported()
    checks = [c for c in (_keyword(k, v, schema) for k, v in schema.items()) if c is not None]

    def run(instance: Any, path: Path) -> Iterator[ArgError]:
        for check in checks:
            yield from check(instance, path)
    return run


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _Unsupported()
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Unsupported()
    return v


def _schemas(v: Any) -> list[Check]:
    if not isinstance(v, list) or not v:
        raise _Unsupported()
    return [_compile(s) for s in v]


def _keyword(key: Any, v: Any, schema: dict[Any, Any]) -> Check | None:
    """The check for one keyword (None: an annotation); _Unsupported outside the subset
    (``$id``, ``$defs``, ``$anchor``… too: they only matter to references, which are
    jsonschema's to follow)."""
    if key in FALLBACK or (isinstance(key, str) and key.startswith("$")
                           and key not in ("$schema", "$comment")):
        raise _Unsupported()
    make = _MAKERS.get(key) if isinstance(key, str) else None
    return make(v, schema) if make is not None else None


def _type(v: Any, schema: dict[Any, Any]) -> Check:
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not all(isinstance(n, str) and n in TYPES for n in names):
        raise _Unsupported()
    tests = [TYPES[n] for n in names]

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if not any(t(instance) for t in tests):
            yield ArgError(path, lambda: f"{instance!r} is not of type "
                                     f"{', '.join(repr(n) for n in names)}")
    return check


def _properties(v: Any, schema: dict[Any, Any]) -> Check:
    if not isinstance(v, dict):
        raise _Unsupported()
    subs = [(name, _compile(sub, keyed=True)) for name, sub in v.items()]

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if isinstance(instance, dict):
            for name, sub in subs:
                if name in instance:
                    yield from sub(instance[name], (*path, name))
    return check


def _required(v: Any, schema: dict[Any, Any]) -> Check:
    if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
        raise _Unsupported()

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if isinstance(instance, dict):
            for name in v:
                if name not in instance:
                    yield ArgError(path, lambda name=name: f"{name!r} is a required property")
    return check


def _additional(v: Any, schema: dict[Any, Any]) -> Check:
    if isinstance(v, bool):
        sub = None
    elif isinstance(v, dict):
        sub = _compile(v, keyed=True)
    else:
        raise _Unsupported()
    declared = schema.get("properties", {})
    if not isinstance(declared, dict):
        raise _Unsupported()

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if not isinstance(instance, dict):
            return
        extras = [k for k in instance if k not in declared]
        if sub is not None:
            for k in extras:
                yield from sub(instance[k], (*path, k))
        elif v is False and extras:
            def describe() -> str:
                names = sorted(extras, key=str)
                verb = "was" if len(names) == 1 else "were"
                return (f"Additional properties are not allowed "
                        f"({', '.join(repr(n) for n in names)} {verb} unexpected)")
            yield ArgError(path, describe)
    return check


def _items(v: Any, schema: dict[Any, Any]) -> Check:
    if not isinstance(v, dict):  # a list (tuples) or a boolean: the drafts differ
        raise _Unsupported()
    sub = _compile(v, keyed=True)

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if isinstance(instance, list):
            for i, item in enumerate(instance):
                yield from sub(item, (*path, i))
    return check


def _enum(v: Any, schema: dict[Any, Any]) -> Check:
    if not isinstance(v, list):
        raise _Unsupported()

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if all(not equal(each, instance) for each in v):
            yield ArgError(path, lambda: f"{instance!r} is not one of {v!r}")
    return check


def _const(v: Any, schema: dict[Any, Any]) -> Check:
    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if not equal(instance, v):
            yield ArgError(path, lambda: f"{v!r} was expected")
    return check


def _size(kind: str, at_least: bool) -> Callable[[Any, dict[Any, Any]], Check]:
    """min/maxLength, min/maxItems, min/maxProperties: jsonschema's wording for each."""
    test = TYPES[kind]
    few = {"string": "is too short", "array": "is too short",
           "object": "does not have enough properties"}[kind]
    many = {"string": "is too long", "array": "is too long",
            "object": "has too many properties"}[kind]

    def make(v: Any, schema: dict[Any, Any]) -> Check:
        n = _int(v)
        if at_least:
            words = "should be non-empty" if n == 1 else few
        else:
            words = "is expected to be empty" if n == 0 else many

        def check(instance: Any, path: Path) -> Iterator[ArgError]:
            if test(instance) and (len(instance) < n if at_least else len(instance) > n):
                yield ArgError(path, lambda: f"{instance!r} {words}")
        return check
    return make


def _bound(op: Callable[[Any, Any], bool], words: str) -> Callable[[Any, dict[Any, Any]], Check]:
    """minimum, maximum, exclusiveMinimum, exclusiveMaximum (``op``: the failing comparison)."""
    def make(v: Any, schema: dict[Any, Any]) -> Check:
        limit = _number(v)

        def check(instance: Any, path: Path) -> Iterator[ArgError]:
            if TYPES["number"](instance) and op(instance, limit):
                yield ArgError(path, lambda: f"{instance!r} is {words} {limit!r}")
        return check
    return make


def _pattern(v: Any, schema: dict[Any, Any]) -> Check:
    if not isinstance(v, str):
        raise _Unsupported()
    try:
        rx = re.compile(v)
    except (re.error, RecursionError, OverflowError):
        raise _Unsupported() from None  # jsonschema raises it at the call: same outcome

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        if isinstance(instance, str) and not rx.search(instance):
            yield ArgError(path, lambda: f"{instance!r} does not match {v!r}")
    return check


def _any_of(v: Any, schema: dict[Any, Any]) -> Check:
    subs = _schemas(v)

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        for sub in subs:
            if next(iter(sub(instance, path)), None) is None:
                return
        yield ArgError(path, lambda: f"{instance!r} is not valid under any of the given schemas")
    return check


def _all_of(v: Any, schema: dict[Any, Any]) -> Check:
    subs = _schemas(v)

    def check(instance: Any, path: Path) -> Iterator[ArgError]:
        for sub in subs:
            yield from sub(instance, path)
    return check


def _format(v: Any, schema: dict[Any, Any]) -> None:
    return None  # an annotation: no format checker is given to jsonschema either


_MAKERS: dict[str, Callable[[Any, dict[Any, Any]], Check | None]] = {
    "type": _type, "properties": _properties, "required": _required,
    "additionalProperties": _additional, "items": _items, "enum": _enum, "const": _const,
    "minLength": _size("string", True), "maxLength": _size("string", False),
    "minItems": _size("array", True), "maxItems": _size("array", False),
    "minProperties": _size("object", True), "maxProperties": _size("object", False),
    "minimum": _bound(lambda a, b: a < b, "less than the minimum of"),
    "maximum": _bound(lambda a, b: a > b, "greater than the maximum of"),
    "exclusiveMinimum": _bound(lambda a, b: a <= b, "less than or equal to the minimum of"),
    "exclusiveMaximum": _bound(lambda a, b: a >= b, "greater than or equal to the maximum of"),
    "pattern": _pattern, "anyOf": _any_of, "allOf": _all_of, "format": _format,
}
