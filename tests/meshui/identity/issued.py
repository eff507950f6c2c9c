"""Certificates for tests, issued by meshui's own CA through its own issuance code
(``meshui.identity.issuance.issue``, what a CSR on the control channel runs), so their rows,
serials and lifetimes are the real ones.

``at`` back-dates the issue (a certificate issued 20 h ago of a 24 h lifetime has a quarter
of its life left: it warns). ``issue_on_server`` runs the same in a process of its own
against a live server's database and CA (the browser tests and the screenshots).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
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


def issue_on_server(redis_url: str, workdir: Path, certificates: list[tuple[str, str, float]],
                    **extra_env: str) -> None:
    """Issue ``(service, proxy_id, hours_ago)`` certificates on the meshui that
    ``tests.meshui.browser.meshui_server(redis_url, workdir)`` runs: the same issuance code,
    in a process of its own against that server's database and CA (as a CSR would be), one
    join token per service."""
    from tests.meshui.browser import ROOT, server_env

    code = (
        "import json, sys\n"
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from meshui.identity.models import JoinToken\n"
        "from tests.meshui.identity.issued import issue_certificate\n"
        "tokens = {}\n"
        "for service, proxy, hours in json.loads(sys.argv[-1]):\n"
        "    if service not in tokens:\n"
        "        tokens[service] = JoinToken.issue(service, created_by_name='tests')[0]\n"
        "    issue_certificate(service, proxy, at=timezone.now() - timedelta(hours=hours),\n"
        "                      token=tokens[service])\n")
    subprocess.run([sys.executable, "-c", "import django, sys; django.setup(); "
                    "exec(sys.argv[1])", code, json.dumps(certificates)],
                   cwd=ROOT, env=server_env(redis_url, workdir, **extra_env), check=True,
                   timeout=60)
