"""Hours until certificates expire, for the alert metric ``cert_expiry_h`` (docs/alerts.md).

A live proxy's latest certificate is the one it serves with; a certificate that is not
renewed (its join token revoked, the CA away) runs down to 0 and then the sidecar drops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from meshui.identity.models import Certificate
from meshui.registry.models import Instance


@dataclass(frozen=True, slots=True)
class HoursLeft:
    """Hours until expiry (negative: expired) of each live proxy's latest certificate, and
    the least of each service's."""

    by_proxy: dict[str, float] = field(default_factory=dict)
    by_service: dict[str, float] = field(default_factory=dict)


def hours_left(now: datetime) -> HoursLeft:
    live = set(Instance.objects.live(now).values_list("proxy_id", flat=True))
    left = HoursLeft()
    for row in Certificate.objects.latest_per_proxy().filter(proxy_id__in=live):
        hours = round((row.not_after - now).total_seconds() / 3600, 4)
        left.by_proxy[row.proxy_id] = hours
        least = left.by_service.get(row.service)
        left.by_service[row.service] = hours if least is None else min(least, hours)
    return left
