"""Rules for single configuration values: a test, what it allows in words, and values it refuses.

`integer(1)` allows "an integer >= 1", `choice(("pre", "post"))` "one of pre, post"; `refused` words the
error for a value a rule does not allow. rnnlab.validation applies them to the keys of conf/.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A test of one value, what it allows in words, and values it refuses (the tests try each)."""

    test: Callable[[Any], bool]
    allowed: str
    bad: tuple = ()


def refused(key: str, value: Any, allowed: str) -> str:
    """The message for a value that is not allowed, the value written as in an override."""
    return f"{key}={_written(value)} is not allowed; allowed: {allowed}"


def _written(value: Any) -> str:
    """`value` as a Hydra override writes it: null, true, 'text', [1, 2]."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_written, value)) + "]"
    return repr(value) if isinstance(value, str) else _shown(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int, high: int | None = None) -> Rule:
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    bad = (low - 1,) if high is None else (low - 1, high + 1)
    return Rule(lambda v: is_int(v) and low <= v and (high is None or v <= high), allowed, bad)


def number(
    low: float | None = None, high: float | None = None, *, open_low: bool = False, open_high: bool = False
) -> Rule:
    """A finite number within the bounds given (closed unless `open_*`)."""

    def test(v: Any) -> bool:
        return (
            is_number(v)
            and (low is None or (v > low if open_low else v >= low))
            and (high is None or (v < high if open_high else v <= high))
        )

    if low is not None and high is not None:
        allowed = f"a number in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    elif low is not None:
        allowed = f"a number {'>' if open_low else '>='} {low}"
    else:
        allowed = "a finite number"
    bad = (math.nan,) if low is None else (low if open_low else low - 1,)
    return Rule(test, allowed, bad + (() if high is None else (high if open_high else high + 1,)))


def _shown(value: Any) -> str:
    """A value as YAML writes it: null, true, plateau."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def choice(values: tuple, bad: Any = "bogus") -> Rule:
    """One of `values` (a bool is not taken for 1, nor 1 for True)."""
    values = tuple(values)
    return Rule(
        lambda v: any(v == a and type(v) is type(a) for a in values),
        "one of " + ", ".join(dict.fromkeys(map(_shown, values))),
        (bad,),
    )


def text() -> Rule:
    return Rule(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string", ("",))


def nullable(rule: Rule, meaning: str) -> Rule:
    return Rule(lambda v: v is None or rule.test(v), f"{rule.allowed}, or null ({meaning})", rule.bad)


def either(*rules: Rule, bad: tuple, allowed: str | None = None) -> Rule:
    """A value any of `rules` allows; `allowed` words it when joining theirs would not read well."""
    return Rule(
        lambda v: any(r.test(v) for r in rules), allowed or ", or ".join(r.allowed for r in rules), bad
    )


def items(rule: Rule, *, min_len: int = 1, unique: bool = False) -> Rule:
    """A list of at least `min_len` values that each pass `rule` (and differ, when `unique`)."""

    def test(v: Any) -> bool:
        ok = isinstance(v, list) and len(v) >= min_len and all(rule.test(x) for x in v)
        return ok and (not unique or len(set(map(repr, v))) == len(v))

    shape = ("a list" if min_len == 0 else "a non-empty list") + (" without repeats" if unique else "")
    return Rule(test, f"{shape}, each {rule.allowed}", ([rule.bad[0]],))


def passes(check: Callable[[Any], Any], allowed: str, bad: tuple) -> Rule:
    """A rule whose test is an existing check that raises ConfigError (kept as the one source of the rule)."""

    def test(v: Any) -> bool:
        try:
            check(v)
        except ConfigError:
            return False
        return True

    return Rule(test, allowed, bad)
