"""Typed readers for environment variables that fail loudly on a bad value.

In the style of healthchecks' ``envbool``: every setting is read through one of these, so a
typo such as ``MESHUI_DEBUG=ture`` stops the process at start-up with a message naming the
variable instead of silently meaning ``False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class EnvError(ValueError):
    """An environment variable holds a value its setting cannot use."""


def _raw(name: str, default: str | None, environ: Mapping[str, str] | None) -> str | None:
    source = os.environ if environ is None else environ
    return source.get(name, default)


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The variable as a string (``default`` when unset)."""
    value = _raw(name, default, environ)
    assert value is not None
    return value


def env_bool(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is an error."""
    value = _raw(name, None, environ)
    if value is None:
        return default
    normalized = value.strip().lower()
    if normalized in _TRUE:
        return True
    if normalized in _FALSE:
        return False
    raise EnvError(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An integer, optionally bounded; a non-number or out-of-range value is an error."""
    value = _raw(name, None, environ)
    if value is None or value.strip() == "":
        result = default
    else:
        try:
            result = int(value.strip())
        except ValueError:
            raise EnvError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise EnvError(f"{name} must be at least {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise EnvError(f"{name} must be at most {maximum}, got {result}")
    return result


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A number, optionally bounded; a non-number or out-of-range value is an error."""
    value = _raw(name, None, environ)
    if value is None or value.strip() == "":
        result = default
    else:
        try:
            result = float(value.strip())
        except ValueError:
            raise EnvError(f"{name} must be a number, got {value!r}") from None
        if result != result:  # NaN passes every comparison below
            raise EnvError(f"{name} must be a number, got {value!r}")
    if minimum is not None and result < minimum:
        raise EnvError(f"{name} must be at least {minimum:g}, got {result:g}")
    if maximum is not None and result > maximum:
        raise EnvError(f"{name} must be at most {maximum:g}, got {result:g}")
    return result


def env_list(
    name: str, default: str = "", environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    value = env_str(name, default, environ)
    return [item.strip() for item in value.split(",") if item.strip()]
