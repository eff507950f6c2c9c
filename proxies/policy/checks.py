"""The value checks the policy parser is made of (``proxies.policy.parser``).

Each check takes ``(value, where)``, where ``where`` is the dotted path of the value in the
document (``services.payments.retries.attempts``), and returns what the value stands for
in the schema (``proxies.policy.schema``) or raises ``PolicyError`` naming ``where``.
``section`` checks an object against a table of field -> check and builds its dataclass,
so a section of the schema is one table; ``sub``, ``nullable`` and ``counter`` make
checks out of others.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from proxies.mesh.schema import service_name_problem
from proxies.policy.schema import (
    ANY_IDENTITY,
    AUTHORIZATION_ACTIONS,
    LOAD_BALANCERS,
    MTLS_MODES,
    RETRY_ON_CONDITIONS,
    UNAUTHENTICATED,
    AbortFault,
    AuthorizationRule,
    DelayFault,
    Fault,
    Match,
    PolicyError,
    Route,
    TokenBucketSpec,
)

Check = Any  # Callable[[Any, str], Any]


def section(
    doc: Any, where: str, cls: type, checks: Mapping[str, Check], defaults: Mapping[str, Any] | None = None
) -> Any:
    doc = mapping(doc, where)
    known_keys(doc, checks, where)
    values = dict(defaults or {})
    for name, check in checks.items():
        if name in doc:
            values[name] = check(doc[name], f"{where}.{name}")
    for name, spec in cls.__dataclass_fields__.items():  # type: ignore[attr-defined]
        if name not in values and spec.default is spec.default_factory:  # both MISSING: required
            raise PolicyError(f"{where}.{name}", "is required")
    return cls(**values)


def sub(cls: type, checks: Mapping[str, Check], defaults: Mapping[str, Any] | None = None) -> Check:
    return lambda value, where: section(value, where, cls, checks, defaults)


def nullable(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def or_empty(value: Any) -> Any:
    return {} if value is None else value


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(where or "policy", f"must be an object, got {kind(value)}")
    return value


def known_keys(doc: Mapping[str, Any], allowed: Any, where: str) -> None:
    for key in doc:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise PolicyError(at, f"unknown key ({hint})")


def kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def number(value: Any, where: str, minimum: float, inclusive: bool, maximum: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > minimum if not inclusive else value >= minimum):
        if maximum is None or value <= maximum:
            return float(value)
    if maximum is not None:
        raise PolicyError(where, f"must be a number from {minimum:g} to {maximum:g}, got {kind(value)}")
    bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
    raise PolicyError(where, f"must be a number {bound}, got {kind(value)}")


def positive(value: Any, where: str) -> float:
    return number(value, where, 0.0, inclusive=False)


def non_negative(value: Any, where: str) -> float:
    return number(value, where, 0.0, inclusive=True)


def percent(value: Any, where: str) -> float:
    return number(value, where, 0.0, inclusive=True, maximum=100.0)


def count(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise PolicyError(where, f"must be an integer of at least {minimum}, got {kind(value)}")


def counter(minimum: int) -> Check:
    return lambda value, where: count(value, where, minimum)


def flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PolicyError(where, f"must be true or false, got {kind(value)}")


def status(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599:
        return value
    raise PolicyError(where, f"must be an HTTP status from 200 to 599, got {kind(value)}")


def list_value(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(where, f"must be a list, got {kind(value)}")
    return value


def statuses(value: Any, where: str) -> frozenset[int]:
    return frozenset(status(v, f"{where}[{i}]") for i, v in enumerate(list_value(value, where)))


def retry_on(value: Any, where: str) -> frozenset[str]:
    conditions = list_value(value, where)
    for i, condition in enumerate(conditions):
        if not isinstance(condition, str) or condition not in RETRY_ON_CONDITIONS:
            known = ", ".join(sorted(RETRY_ON_CONDITIONS))
            raise PolicyError(f"{where}[{i}]", f"unknown condition {condition!r} (one of: {known})")
    return frozenset(conditions)


def load_balancer(value: Any, where: str) -> str:
    if value not in LOAD_BALANCERS:
        raise PolicyError(where, f"must be one of {', '.join(LOAD_BALANCERS)}, got {kind(value)}")
    return str(value)


def mtls_mode(value: Any, where: str) -> str:
    if value not in MTLS_MODES:
        raise PolicyError(where, f"must be one of {', '.join(MTLS_MODES)}, got {kind(value)}")
    return str(value)


AUTHORIZATION_RULES_MAX = 256  # per service: every request is matched against them
_RULE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")


def authorization_rules(value: Any, where: str) -> tuple[AuthorizationRule, ...]:
    docs = list_value(value, where)
    if len(docs) > AUTHORIZATION_RULES_MAX:
        raise PolicyError(where, f"at most {AUTHORIZATION_RULES_MAX} rules, got {len(docs)}")
    rules: list[AuthorizationRule] = []
    for i, doc in enumerate(docs):
        rule: AuthorizationRule = section(doc, f"{where}[{i}]", AuthorizationRule, _RULE)
        if any(r.name == rule.name for r in rules):
            raise PolicyError(f"{where}[{i}].name", f"duplicate rule name {rule.name!r}")
        rules.append(rule)
    return tuple(rules)


def rule_name(value: Any, where: str) -> str:
    if isinstance(value, str) and _RULE_NAME.fullmatch(value):
        return value
    raise PolicyError(where, "must be 1..63 letters, digits, '.', '_', '-' starting and ending with a "
                             f"letter or digit (it is sent in x-meshui-denied), got {kind(value)}")


def authorization_action(value: Any, where: str) -> str:
    if value not in AUTHORIZATION_ACTIONS:
        raise PolicyError(where, f"must be one of {', '.join(AUTHORIZATION_ACTIONS)}, got {kind(value)}")
    return str(value)


def sources(value: Any, where: str) -> tuple[str, ...]:
    names = list_value(value, where)
    for i, source in enumerate(names):
        if source in (ANY_IDENTITY, UNAUTHENTICATED):
            continue
        problem = service_name_problem(source)
        if problem is not None:
            raise PolicyError(f"{where}[{i}]", f"a service name, '{ANY_IDENTITY}' (any mesh identity) or "
                                               f"'{UNAUTHENTICATED}' (callers without one): {problem}")
    return tuple(names)


def methods(value: Any, where: str) -> tuple[str, ...]:
    return tuple(method(v, f"{where}[{i}]") for i, v in enumerate(list_value(value, where)))


def path(value: Any, where: str) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return value
    raise PolicyError(where, f"must be a path starting with '/', got {kind(value)}")


def method(value: Any, where: str) -> str:
    if isinstance(value, str) and value.isascii() and value.isalpha():
        return value.upper()
    raise PolicyError(where, f"must be an HTTP method such as GET, got {kind(value)}")


def headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    rules = []
    for name, expected in mapping(value, where).items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not name or not name.isascii() or " " in name or ":" in name:
            raise PolicyError(where, f"bad header name {name!r}")
        # YAML reads `x-canary: 1` as the integer 1; an integer means its decimal text.
        if isinstance(expected, int) and not isinstance(expected, bool):
            expected = str(expected)
        if not isinstance(expected, str) or not expected.isascii() or not expected.isprintable():
            raise PolicyError(at, f"must be a printable ASCII string (quote it), got {kind(expected)}")
        rules.append((name.lower(), expected))
    return tuple(rules)


def split(value: Any, where: str, allow_empty: bool = True) -> tuple[tuple[str, float], ...]:
    weights = mapping(value, where)
    if not weights and allow_empty:
        return ()  # explicitly every version, balanced together
    if not weights:
        raise PolicyError(where, "must name at least one version (omit it to use the service's split)")
    pairs = []
    for version, weight in weights.items():
        if not isinstance(version, str) or not version:
            raise PolicyError(where, f"version names are strings (quote them), got {kind(version)}")
        pairs.append((version, percent(weight, f"{where}.{version}")))
    total = sum(w for _, w in pairs)
    if abs(total - 100.0) > 1e-6:
        raise PolicyError(where, f"weights must sum to 100, got {total:g}")
    return tuple(pairs)


def route_split(value: Any, where: str) -> tuple[tuple[str, float], ...]:
    return split(value, where, allow_empty=False)


_FAULT = {
    # percent defaults to the schema's (100: every request of the route)
    "delay": nullable(sub(DelayFault, {"fixed_ms": positive, "percent": percent})),
    "abort": nullable(sub(AbortFault, {"status": status, "percent": percent})),
}


def fault(value: Any, where: str) -> Fault | None:
    if value is None:
        return None
    parsed: Fault = section(value, where, Fault, _FAULT)
    if parsed.delay is None and parsed.abort is None:
        raise PolicyError(where, "give delay, abort or both (or null for no fault)")
    return parsed


_MATCH = {"path_prefix": nullable(path), "method": nullable(method), "headers": headers}


_RULE = {
    "name": rule_name,
    "action": authorization_action,
    "sources": sources,
    "methods": methods,
    "path_prefix": nullable(path),
    "headers": headers,
}


def routes(value: Any, where: str) -> tuple[Route, ...]:
    built = []
    for i, doc in enumerate(list_value(value, where)):
        at = f"{where}[{i}]"
        checks: dict[str, Check] = {
            "name": name,
            "match": lambda value, at: section(or_empty(value), at, Match, _MATCH),
            "split": nullable(route_split),
            "fault": fault,
        }
        built.append(section(doc, at, Route, checks, {"name": f"route-{i}"}))
    return tuple(built)


def name(value: Any, where: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise PolicyError(where, f"must be a non-empty string, got {kind(value)}")


_BUCKET = {
    "requests_per_second": positive,
    "burst": lambda value, where: number(value, where, 1.0, inclusive=True),
}


def bucket(value: Any, where: str) -> TokenBucketSpec | None:
    if value is None:
        return None
    doc = mapping(value, where)
    rate = doc.get("requests_per_second")
    # Burst defaults to one second's worth of tokens (at least one request).
    burst = 1.0
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate):
        burst = float(max(1, math.ceil(rate)))
    spec: TokenBucketSpec = section(doc, where, TokenBucketSpec, _BUCKET, {"burst": burst})
    return spec
