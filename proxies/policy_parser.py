"""The policy document's parser: a document in, a ``Policy`` out (docs/policy.md).

``parse_policy`` validates a whole document before anything changes and raises
``PolicyError`` naming the dotted path of the first value at fault
(``services.payments.split``); ``load_policy_file`` reads one from YAML or JSON;
``policy_as_dict`` turns a ``Policy`` back into the document it reads (admin ``/config``).
The schema it builds, with every default, is ``proxies.policy``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from proxies.policy import (
    LOAD_BALANCERS,
    RETRY_ON_CONDITIONS,
    AbortFault,
    CircuitBreaker,
    DelayFault,
    Fault,
    HealthCheck,
    Match,
    OutlierDetection,
    PeakEwma,
    Policy,
    PolicyError,
    RateLimit,
    Retries,
    RetryBudget,
    Route,
    ServicePolicy,
    Timeouts,
    TokenBucketSpec,
)

# A document is {"revision": int, "default": {...}, "services": {name: {...}}}. Each service's
# object deep-merges over "default", which merges over the dataclass defaults (proxies.policy);
# a mapping merges key by key, anything else (lists, numbers, null, and the ``split`` mapping,
# whose versions are one decision) replaces. Validation is the collector's habit: unknown
# keys are errors (a typo must not silently leave a default in force), and every error names
# the dotted path of the value at fault.

_DOCUMENT_KEYS = ("revision", "default", "services")
_REPLACED_MAPPINGS = frozenset({"split"})


def parse_policy(
    document: Mapping[str, Any], known_versions: Mapping[str, frozenset[str]] | None = None
) -> Policy:
    """Validate a policy document and build the ``Policy`` it describes.

    ``known_versions`` maps a service to the versions its live instances carry (from the
    endpoints in force); a split or route naming another version of such a service is
    rejected. Services absent from it (or with no instances yet) accept any version.
    Raises ``PolicyError`` naming the first field at fault.
    """
    doc = _object(document, "policy")
    _known_keys(doc, _DOCUMENT_KEYS, "")
    revision = _count(doc.get("revision", 0), "revision", 0)
    default_doc = _object(_or_empty(doc.get("default")), "default")
    default = _service(default_doc, "default")
    services: dict[str, ServicePolicy] = {}
    for name, service_doc in _object(_or_empty(doc.get("services")), "services").items():
        if not isinstance(name, str) or not name or not name.isascii() or ":" in name:
            raise PolicyError("services", f"bad service name {name!r}")
        where = f"services.{name}"
        if name != name.lower():
            raise PolicyError(where, "service names are lower case")
        own = _object(_or_empty(service_doc), where)
        services[name] = _service(_merge(default_doc, own), where)
    for name, versions in (known_versions or {}).items():
        if versions:
            where = f"services.{name}" if name in services else "default"
            _check_versions(services.get(name, default), name, versions, where)
    return Policy(revision=revision, default=default, services=MappingProxyType(services))


def load_policy_file(path: str, known_versions: Mapping[str, frozenset[str]] | None = None) -> Policy:
    """Read a policy file, YAML or JSON (``yaml.safe_load`` reads both); PolicyError on any fault."""
    # Imported here, not at the top: PyYAML adds ~1.5 MB RSS and 40 ms of start-up to every
    # sidecar, most of which never read a policy file (bench/RESULTS.md holds RSS to 0.5x Envoy).
    import yaml

    try:
        with open(path, "rb") as f:
            document = yaml.safe_load(f)
    except OSError as exc:
        raise PolicyError("file", f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError("file", f"{path} is neither YAML nor JSON: {exc}") from exc
    return parse_policy(_or_empty(document), known_versions)


def policy_as_dict(policy: Policy) -> dict[str, Any]:
    """The policy as a document ``parse_policy`` reads back, every default filled in (admin /config)."""
    return {
        "revision": policy.revision,
        "default": _plain(policy.default),
        "services": {name: _plain(p) for name, p in sorted(policy.services.items())},
    }


def _plain(value: Any, name: str = "") -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {f: _plain(getattr(value, f), f) for f in value.__dataclass_fields__}
    if name in ("split", "headers") and value is not None:
        return dict(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping) and key not in _REPLACED_MAPPINGS:
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


def _check_versions(policy: ServicePolicy, service: str, versions: frozenset[str], where: str) -> None:
    known = ", ".join(sorted(versions))
    splits = [(f"{where}.split", policy.split)]
    splits += [(f"{where}.routes[{i}].split", r.split or ()) for i, r in enumerate(policy.routes)]
    for at, split in splits:
        for version, _ in split:
            if version not in versions:
                raise PolicyError(
                    f"{at}.{version}",
                    f"unknown version {version!r} of {service} (its instances have: {known})",
                )


# Sections: each is a table of field -> validator; a missing key keeps the dataclass default.

Check = Any  # Callable[[Any, str], Any]


def _service(doc: Mapping[str, Any], where: str) -> ServicePolicy:
    policy: ServicePolicy = _section(doc, where, ServicePolicy, _SERVICE)
    retries, outlier = policy.retries, policy.outlier_detection
    if retries.backoff_max_ms < retries.backoff_base_ms:
        raise PolicyError(f"{where}.retries.backoff_max_ms", "must be at least backoff_base_ms")
    if outlier.max_ejection_s < outlier.base_ejection_s:
        raise PolicyError(f"{where}.outlier_detection.max_ejection_s", "must be at least base_ejection_s")
    names = [r.name for r in policy.routes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise PolicyError(f"{where}.routes[{i}].name", f"duplicate route name {name!r}")
    return policy


def _section(
    doc: Any, where: str, cls: type, checks: Mapping[str, Check], defaults: Mapping[str, Any] | None = None
) -> Any:
    doc = _object(doc, where)
    _known_keys(doc, checks, where)
    values = dict(defaults or {})
    for name, check in checks.items():
        if name in doc:
            values[name] = check(doc[name], f"{where}.{name}")
    for name, spec in cls.__dataclass_fields__.items():  # type: ignore[attr-defined]
        if name not in values and spec.default is spec.default_factory:  # both MISSING: required
            raise PolicyError(f"{where}.{name}", "is required")
    return cls(**values)


def _sub(cls: type, checks: Mapping[str, Check], defaults: Mapping[str, Any] | None = None) -> Check:
    return lambda value, where: _section(value, where, cls, checks, defaults)


def _nullable(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(where or "policy", f"must be an object, got {_kind(value)}")
    return value


def _known_keys(doc: Mapping[str, Any], allowed: Any, where: str) -> None:
    for key in doc:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise PolicyError(at, f"unknown key ({hint})")


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _number(value: Any, where: str, minimum: float, inclusive: bool, maximum: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > minimum if not inclusive else value >= minimum):
        if maximum is None or value <= maximum:
            return float(value)
    if maximum is not None:
        raise PolicyError(where, f"must be a number from {minimum:g} to {maximum:g}, got {_kind(value)}")
    bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
    raise PolicyError(where, f"must be a number {bound}, got {_kind(value)}")


def _positive(value: Any, where: str) -> float:
    return _number(value, where, 0.0, inclusive=False)


def _non_negative(value: Any, where: str) -> float:
    return _number(value, where, 0.0, inclusive=True)


def _percent(value: Any, where: str) -> float:
    return _number(value, where, 0.0, inclusive=True, maximum=100.0)


def _count(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise PolicyError(where, f"must be an integer of at least {minimum}, got {_kind(value)}")


def _counter(minimum: int) -> Check:
    return lambda value, where: _count(value, where, minimum)


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PolicyError(where, f"must be true or false, got {_kind(value)}")


def _status(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599:
        return value
    raise PolicyError(where, f"must be an HTTP status from 200 to 599, got {_kind(value)}")


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(where, f"must be a list, got {_kind(value)}")
    return value


def _statuses(value: Any, where: str) -> frozenset[int]:
    return frozenset(_status(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def _retry_on(value: Any, where: str) -> frozenset[str]:
    conditions = _list(value, where)
    for i, condition in enumerate(conditions):
        if not isinstance(condition, str) or condition not in RETRY_ON_CONDITIONS:
            known = ", ".join(sorted(RETRY_ON_CONDITIONS))
            raise PolicyError(f"{where}[{i}]", f"unknown condition {condition!r} (one of: {known})")
    return frozenset(conditions)


def _load_balancer(value: Any, where: str) -> str:
    if value not in LOAD_BALANCERS:
        raise PolicyError(where, f"must be one of {', '.join(LOAD_BALANCERS)}, got {_kind(value)}")
    return str(value)


def _path(value: Any, where: str) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return value
    raise PolicyError(where, f"must be a path starting with '/', got {_kind(value)}")


def _method(value: Any, where: str) -> str:
    if isinstance(value, str) and value.isascii() and value.isalpha():
        return value.upper()
    raise PolicyError(where, f"must be an HTTP method such as GET, got {_kind(value)}")


def _headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    rules = []
    for name, expected in _object(value, where).items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not name or not name.isascii() or " " in name or ":" in name:
            raise PolicyError(where, f"bad header name {name!r}")
        # YAML reads `x-canary: 1` as the integer 1; an integer means its decimal text.
        if isinstance(expected, int) and not isinstance(expected, bool):
            expected = str(expected)
        if not isinstance(expected, str) or not expected.isascii() or not expected.isprintable():
            raise PolicyError(at, f"must be a printable ASCII string (quote it), got {_kind(expected)}")
        rules.append((name.lower(), expected))
    return tuple(rules)


def _split(value: Any, where: str, allow_empty: bool = True) -> tuple[tuple[str, float], ...]:
    weights = _object(value, where)
    if not weights and allow_empty:
        return ()  # explicitly every version, balanced together
    if not weights:
        raise PolicyError(where, "must name at least one version (omit it to use the service's split)")
    split = []
    for version, weight in weights.items():
        if not isinstance(version, str) or not version:
            raise PolicyError(where, f"version names are strings (quote them), got {_kind(version)}")
        split.append((version, _percent(weight, f"{where}.{version}")))
    total = sum(w for _, w in split)
    if abs(total - 100.0) > 1e-6:
        raise PolicyError(where, f"weights must sum to 100, got {total:g}")
    return tuple(split)


def _route_split(value: Any, where: str) -> tuple[tuple[str, float], ...]:
    return _split(value, where, allow_empty=False)


_FAULT = {
    "delay": _nullable(_sub(DelayFault, {"fixed_ms": _positive, "percent": _percent}, {"percent": 100.0})),
    "abort": _nullable(_sub(AbortFault, {"status": _status, "percent": _percent}, {"percent": 100.0})),
}


def _fault(value: Any, where: str) -> Fault | None:
    if value is None:
        return None
    fault: Fault = _section(value, where, Fault, _FAULT)
    if fault.delay is None and fault.abort is None:
        raise PolicyError(where, "give delay, abort or both (or null for no fault)")
    return fault


_MATCH = {"path_prefix": _nullable(_path), "method": _nullable(_method), "headers": _headers}


def _routes(value: Any, where: str) -> tuple[Route, ...]:
    routes = []
    for i, doc in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        checks: dict[str, Check] = {
            "name": _name,
            "match": lambda value, at: _section(_or_empty(value), at, Match, _MATCH),
            "split": _nullable(_route_split),
            "fault": _fault,
        }
        routes.append(_section(doc, at, Route, checks, {"name": f"route-{i}"}))
    return tuple(routes)


def _name(value: Any, where: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise PolicyError(where, f"must be a non-empty string, got {_kind(value)}")


_BUCKET = {
    "requests_per_second": _positive,
    "burst": lambda value, where: _number(value, where, 1.0, inclusive=True),
}


def _bucket(value: Any, where: str) -> TokenBucketSpec | None:
    if value is None:
        return None
    doc = _object(value, where)
    rate = doc.get("requests_per_second")
    # Burst defaults to one second's worth of tokens (at least one request).
    burst = 1.0
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate):
        burst = float(max(1, math.ceil(rate)))
    bucket: TokenBucketSpec = _section(doc, where, TokenBucketSpec, _BUCKET, {"burst": burst})
    return bucket


_SERVICE: dict[str, Check] = {
    "load_balancer": _load_balancer,
    "peak_ewma": _sub(PeakEwma, {"default_rtt_ms": _positive, "decay_s": _positive}),
    "timeouts": _sub(
        Timeouts,
        {
            "connect_ms": _positive,
            "request_ms": _nullable(_positive),
            "per_try_ms": _nullable(_positive),
            "idle_s": _nullable(_positive),
        },
    ),
    "retries": _sub(
        Retries,
        {
            "attempts": _counter(0),
            "retry_on": _retry_on,
            "statuses": _statuses,
            "per_try_timeout_ms": _nullable(_positive),
            "backoff_base_ms": _positive,
            "backoff_max_ms": _positive,
            "budget": _sub(
                RetryBudget,
                {"percent": _percent, "min_per_second": _non_negative, "window_s": _positive},
            ),
            "retry_non_idempotent": _flag,
            "max_buffered_body_bytes": _counter(0),
        },
    ),
    "circuit_breaker": _sub(
        CircuitBreaker,
        {
            "max_connections": _counter(1),
            "max_pending_requests": _counter(0),
            "max_requests": _counter(1),
            "max_retries": _counter(0),
        },
    ),
    "outlier_detection": _sub(
        OutlierDetection,
        {
            "consecutive_5xx": _nullable(_counter(1)),
            "consecutive_gateway_errors": _nullable(_counter(1)),
            "interval_s": _positive,
            "base_ejection_s": _positive,
            "max_ejection_s": _positive,
            "max_ejection_percent": _percent,
            "panic_threshold_percent": _percent,
            "health_check": _nullable(
                _sub(
                    HealthCheck,
                    {
                        "path": _path,
                        "interval_s": _positive,
                        "timeout_ms": _positive,
                        "healthy_threshold": _counter(1),
                    },
                )
            ),
        },
    ),
    "split": _split,
    "routes": _routes,
    "rate_limit": _sub(RateLimit, {"total": _bucket, "per_source": _bucket}),
}
