"""A CSR on the control channel in, a signed certificate out (and recorded), or a refusal.

Run in the database thread (``database_sync_to_async``): the token's row is read again, the
CSR checked (csr.py), the leaf signed (about 0.1 ms of OpenSSL) and its row written.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from meshui.identity.authority import current_authority
from meshui.identity.certs import serial_hex
from meshui.identity.csr import checked_key
from meshui.identity.joining import Grant, still_allowed
from meshui.identity.models import Certificate

logger = logging.getLogger(__name__)


def issue(grant: Grant, proxy_id: str, csr_id: int, pem: str, now: datetime) -> dict[str, Any]:
    """The ``certificate`` frame for ``pem``; raises TokenRefused or CsrRefused."""
    still_allowed(grant, now)
    authority = current_authority()
    identity = authority.identity(grant.service)
    key = checked_key(pem, identity, grant.service)
    leaf = authority.sign(key, grant.service, now)
    cert = leaf.certificate
    serial = serial_hex(cert.serial_number)
    Certificate.objects.create(
        proxy_id=proxy_id, service=grant.service, spiffe_id=identity, serial=serial,
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        issued_at=now, token_id=grant.token_id)
    logger.info("identity: issued %s to %s (%s), serial %s, until %s", identity, proxy_id,
                grant.prefix, serial, cert.not_valid_after_utc.isoformat())
    return {
        "type": "certificate", "id": csr_id, "spiffe_id": identity,
        "chain": authority.chain_of(cert), "serial": serial,
        "not_before": int(cert.not_valid_before_utc.timestamp()),
        "not_after": int(cert.not_valid_after_utc.timestamp()),
        "refresh_at": int(leaf.refresh_at.timestamp()),
    }
