"""``GET /api/v1/certificates``: each proxy's latest certificate, and warnings before expiry.

Pure where it decides: ``certificate_warnings`` and ``ca_warnings`` take the times and a
clock. A certificate warns once a quarter of its life is left (its sidecar renews at two
thirds, so by then a renewal failed for hours); the CA warns 30 days before it expires, and
when it expires within a leaf's lifetime (leaves are then cut short to its end).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from meshui.identity.authority import Authority
from meshui.identity.certs import serial_hex, subject_text
from meshui.identity.models import Certificate
from meshui.registry.api import iso_timestamp as iso
from meshui.registry.models import Instance

CA_WARNING_AHEAD = timedelta(days=30)


def duration_text(delta: timedelta) -> str:
    """``45 s``, ``12 min``, ``3 h``, ``5 d``: how a warning says a span of time."""
    seconds = int(abs(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def certificate_warnings(not_before: datetime, not_after: datetime, now: datetime) -> list[str]:
    if now >= not_after:
        return [f"expired {duration_text(now - not_after)} ago"]
    left = not_after - now
    if left <= (not_after - not_before) / 4:
        return [f"expires in {duration_text(left)} (not renewed at two thirds of its life)"]
    return []


def ca_warnings(authority: Authority, now: datetime) -> list[str]:
    warnings = []
    for cert in (authority.certificate, *authority.intermediates[1:], *authority.roots):
        end = cert.not_valid_after_utc
        name = subject_text(cert)
        if now >= end:
            warnings.append(f"{name} expired {duration_text(now - end)} ago")
        elif end - now <= max(CA_WARNING_AHEAD, timedelta(seconds=authority.lifetime_s)):
            warnings.append(f"{name} expires in {duration_text(end - now)}")
    return list(dict.fromkeys(warnings))


def certificate_listing(authority: Authority, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    latest = list(Certificate.objects.latest_per_proxy())
    proxies = [row.proxy_id for row in latest]
    counts = dict(Certificate.objects.filter(proxy_id__in=proxies).values("proxy_id")
                  .annotate(n=Count("pk")).values_list("proxy_id", "n"))
    live = set(Instance.objects.live(now).filter(proxy_id__in=proxies)
               .values_list("proxy_id", flat=True))
    certificates = [{
        "proxy_id": row.proxy_id, "service": row.service, "spiffe_id": row.spiffe_id,
        "serial": row.serial, "not_before": iso(row.not_before), "not_after": iso(row.not_after),
        "issued_at": iso(row.issued_at),
        "last_rotation": iso(row.issued_at) if counts.get(row.proxy_id, 1) > 1 else None,
        "renewals": counts.get(row.proxy_id, 1), "connected": row.proxy_id in live,
        "warnings": certificate_warnings(row.not_before, row.not_after, now),
    } for row in latest]
    ca = authority.certificate
    return {
        "ca": {"subject": subject_text(ca), "serial": serial_hex(ca.serial_number),
               "not_after": iso(ca.not_valid_after_utc), "source": authority.source,
               "trust_domain": authority.trust_domain,
               "bundle_version": authority.bundle_version,
               "warnings": ca_warnings(authority, now)},
        "certificates": certificates,
    }


