"""Certificates for tests, issued by meshui's own CA through its own issuance code
(``meshui.identity.issuance.issue``, what a CSR on the control channel runs), so their rows,
serials and lifetimes are the real ones.

``at`` back-dates the issue (a certificate issued 20 h ago of a 24 h lifetime has a quarter
of its life left: it warns). Also runnable in another process against a live server's
database and CA (the browser tests): ``python manage.py shell -c "from
tests.meshui.identity.issued import issue_certificate; ..."``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from meshui.identity.issuance import issue
from meshui.identity.joining import Grant
from meshui.identity.models import JoinToken
from tests.meshui.identity.pki import csr_pem


def issue_certificate(service: str, proxy_id: str, *, at: datetime | None = None,
                      token: JoinToken | None = None) -> dict[str, Any]:
    """The ``certificate`` frame meshui would send ``proxy_id`` for a fresh P-256 CSR."""
    row = token or JoinToken.issue(service, created_by_name="tests")[0]
    grant = Grant(token_id=row.pk, service=row.service, prefix=row.prefix)
    return issue(grant, proxy_id, 1, csr_pem(), at or timezone.now())
