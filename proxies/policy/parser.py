"""The policy document's parser: a document in, a ``Policy`` out (docs/policy.md).

``parse_policy`` validates a whole document before anything changes and raises
``PolicyError`` naming the dotted path of the first value at fault
(``services.payments.split``); ``load_policy_file`` reads one from YAML or JSON;
``policy_as_dict`` turns a ``Policy`` back into the document it reads (admin ``/config``).
The schema it builds, with every default, is ``proxies.policy.schema``; the value checks
the table below is made of (each names the field at fault) are ``proxies.policy.checks``.
A new policy field is a dataclass field in the schema and one line in ``_SERVICE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from proxies.policy import checks
from proxies.policy.checks import Check
from proxies.policy.schema import (
    Authorization,
    CircuitBreaker,
    HealthCheck,
    Mtls,
    OutlierDetection,
    PeakEwma,
    Policy,
    PolicyError,
    RateLimit,
    Retries,
    RetryBudget,
    ServicePolicy,
    Timeouts,
)

# A document is {"revision": int, "default": {...}, "services": {name: {...}}}. Each service's
# object deep-merges over "default", which merges over the dataclass defaults (proxies.policy.schema);
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
    doc = checks.mapping(document, "policy")
    checks.known_keys(doc, _DOCUMENT_KEYS, "")
    revision = checks.count(doc.get("revision", 0), "revision", 0)
    default_doc = checks.mapping(checks.or_empty(doc.get("default")), "default")
    default = _service(default_doc, "default")
    services: dict[str, ServicePolicy] = {}
    for name, service_doc in checks.mapping(checks.or_empty(doc.get("services")), "services").items():
        if not isinstance(name, str) or not name or not name.isascii() or ":" in name:
            raise PolicyError("services", f"bad service name {name!r}")
        where = f"services.{name}"
        if name != name.lower():
            raise PolicyError(where, "service names are lower case")
        own = checks.mapping(checks.or_empty(service_doc), where)
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
    return parse_policy(checks.or_empty(document), known_versions)


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


# A section is a table of field -> check; a missing key keeps the dataclass default.


def _service(doc: Mapping[str, Any], where: str) -> ServicePolicy:
    policy: ServicePolicy = checks.section(doc, where, ServicePolicy, _SERVICE)
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


_SERVICE: dict[str, Check] = {
    "load_balancer": checks.load_balancer,
    "peak_ewma": checks.sub(PeakEwma, {"default_rtt_ms": checks.positive, "decay_s": checks.positive}),
    "timeouts": checks.sub(
        Timeouts,
        {
            "connect_ms": checks.positive,
            "request_ms": checks.nullable(checks.positive),
            "per_try_ms": checks.nullable(checks.positive),
            "idle_s": checks.nullable(checks.positive),
        },
    ),
    "retries": checks.sub(
        Retries,
        {
            "attempts": checks.counter(0),
            "retry_on": checks.retry_on,
            "statuses": checks.statuses,
            "per_try_timeout_ms": checks.nullable(checks.positive),
            "backoff_base_ms": checks.positive,
            "backoff_max_ms": checks.positive,
            "budget": checks.sub(
                RetryBudget,
                {
                    "percent": checks.percent,
                    "min_per_second": checks.non_negative,
                    "window_s": checks.positive,
                },
            ),
            "retry_non_idempotent": checks.flag,
            "max_buffered_body_bytes": checks.counter(0),
        },
    ),
    "circuit_breaker": checks.sub(
        CircuitBreaker,
        {
            "max_connections": checks.counter(1),
            "max_pending_requests": checks.counter(0),
            "max_requests": checks.counter(1),
            "max_retries": checks.counter(0),
        },
    ),
    "outlier_detection": checks.sub(
        OutlierDetection,
        {
            "consecutive_5xx": checks.nullable(checks.counter(1)),
            "consecutive_gateway_errors": checks.nullable(checks.counter(1)),
            "interval_s": checks.positive,
            "base_ejection_s": checks.positive,
            "max_ejection_s": checks.positive,
            "max_ejection_percent": checks.percent,
            "panic_threshold_percent": checks.percent,
            "health_check": checks.nullable(
                checks.sub(
                    HealthCheck,
                    {
                        "path": checks.path,
                        "interval_s": checks.positive,
                        "timeout_ms": checks.positive,
                        "healthy_threshold": checks.counter(1),
                    },
                )
            ),
        },
    ),
    "split": checks.split,
    "routes": checks.routes,
    "rate_limit": checks.sub(RateLimit, {"total": checks.bucket, "per_source": checks.bucket}),
    "mtls": checks.sub(Mtls, {"mode": checks.mtls_mode}),
    "authorization": checks.sub(Authorization, {"rules": checks.authorization_rules}),
}
