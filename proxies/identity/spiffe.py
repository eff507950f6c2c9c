"""SPIFFE IDs of mesh services: ``spiffe://<trust domain>/service/<name>`` (docs/security.md).

Pure, standard library and ``proxies.mesh.schema`` only: meshui's CA names certificates
with these functions and every sidecar checks its peers with them, so the two can never
disagree on what a service's identity is.
"""

from __future__ import annotations

import re
from typing import Any

from proxies.mesh.schema import service_name_problem, shown

SCHEME = "spiffe://"
SERVICE_PATH = "/service/"
DEFAULT_TRUST_DOMAIN = "meshui.local"
# SPIFFE's rule for a trust domain name: lower-case letters, digits, dots, dashes and
# underscores (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md, 2.1).
TRUST_DOMAIN_MAX = 255
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")


def trust_domain_problem(value: Any) -> str | None:
    if not isinstance(value, str) or _TRUST_DOMAIN.fullmatch(value) is None:
        return (f"must be 1..{TRUST_DOMAIN_MAX} characters of a-z, 0-9, '.', '-', '_' "
                f"(a SPIFFE trust domain), got {shown(value)}")
    return None


def spiffe_id(trust_domain: str, service: str) -> str:
    """The identity of ``service``'s instances; both names must be valid (checked)."""
    problem = trust_domain_problem(trust_domain)
    if problem is None:
        problem = service_name_problem(service)
    if problem is not None:
        raise ValueError(problem)
    return f"{SCHEME}{trust_domain}{SERVICE_PATH}{service}"


def service_of(identity: str | None, trust_domain: str | None = None) -> str | None:
    """The service an ID names (None if it is not a mesh service ID, or is of another
    trust domain when ``trust_domain`` is given)."""
    if not identity or not identity.startswith(SCHEME):
        return None
    domain, sep, service = identity[len(SCHEME):].partition(SERVICE_PATH)
    if not sep or trust_domain_problem(domain) is not None or service_name_problem(service) is not None:
        return None
    if trust_domain is not None and domain != trust_domain:
        return None
    return service


def trust_domain_of(identity: str) -> str | None:
    """The trust domain of a mesh service ID (None if it is not one)."""
    if service_of(identity) is None:
        return None
    return identity[len(SCHEME):].partition(SERVICE_PATH)[0]


def uri_sans(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """The URI SANs of a certificate as ``ssl.SSLObject.getpeercert()`` returns it."""
    if not peercert:
        return ()
    return tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI")


def peer_identity(peercert: dict[str, Any] | None) -> str | None:
    """The one SPIFFE ID a peer certificate carries (None if none, or more than one: SPIFFE
    allows exactly one)."""
    ids = [uri for uri in uri_sans(peercert) if uri.startswith(SCHEME)]
    return ids[0] if len(ids) == 1 else None
