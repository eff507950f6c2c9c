"""``manage.py join_token --service NAME [NAME ...] [--expires-in S] [--description D]
[--replace] [--output-dir DIR]``: join tokens.

With one service and no ``--output-dir`` it prints the token and nothing else on stdout (one
line), so a harness can read it: ``TOKEN=$(manage.py join_token --service payments)``. With
``--output-dir`` each service's token goes to ``DIR/<service>.token`` (mode 0600), as the
demo does at every start; ``--replace`` first revokes that service's active tokens with the
same description (their sidecars are disconnected, as the API's revocation does). Every
creation and revocation is audited as the API's are (user: none, path: ``manage.py join_token``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from meshui.identity.models import DESCRIPTION_MAX, JoinToken
from meshui.identity.schemas import EXPIRES_MAX_S, EXPIRES_MIN_S
from meshui.policy.models import Action, AuditEntry
from meshui.registry.api import iso_timestamp as iso
from proxies.mesh.schema import service_name_problem

COMMAND = "manage.py join_token"


class Command(BaseCommand):
    help = "Create a join token for one service's sidecars; prints the token (only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--service", required=True, nargs="+", dest="services",
                            help="the service it may join as (one token per service)")
        parser.add_argument("--expires-in", type=int, default=None, metavar="SECONDS",
                            help=f"lifetime, {EXPIRES_MIN_S}..{EXPIRES_MAX_S} s (default "
                                 "MESHUI_JOIN_TOKEN_TTL_S, 30 days)")
        parser.add_argument("--description", default="", help="what it is for")
        parser.add_argument("--replace", action="store_true",
                            help="revoke the service's active tokens with this description first")
        parser.add_argument("--output-dir", type=Path, default=None,
                            help="write each token to DIR/<service>.token (mode 0600)")

    def handle(self, *args: Any, services: list[str], expires_in: int | None, description: str,
               replace: bool, output_dir: Path | None, **options: Any) -> None:
        for service in services:
            problem = service_name_problem(service)
            if problem is not None:
                raise CommandError(f"--service {problem}")
        if len(services) > 1 and output_dir is None:
            raise CommandError("several services need --output-dir (one token file each)")
        if expires_in is not None and not EXPIRES_MIN_S <= expires_in <= EXPIRES_MAX_S:
            raise CommandError(f"--expires-in must be {EXPIRES_MIN_S}..{EXPIRES_MAX_S} seconds, "
                               f"got {expires_in}")
        if len(description) > DESCRIPTION_MAX:
            raise CommandError(f"--description is at most {DESCRIPTION_MAX} characters")
        for service in services:
            token = self._issue(service, expires_in, description, replace)
            if output_dir is None:
                self.stdout.write(token)
                continue
            output_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(output_dir / f"{service}.token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                 0o600)
            with os.fdopen(descriptor, "w") as f:
                f.write(token + "\n")

    @staticmethod
    def _issue(service: str, expires_in: int | None, description: str, replace: bool) -> str:
        # Imported here: the API module builds its router at import, a command need not.
        from meshui.identity.api import revoke

        with transaction.atomic():
            if replace:
                for old in JoinToken.objects.select_for_update().filter(
                        service=service, description=description, revoked_at__isnull=True):
                    if revoke(old):
                        AuditEntry.objects.create(
                            action=Action.JOIN_TOKEN_REVOKED, source="cli", path=COMMAND,
                            detail=f"{old.prefix}... for {service!r} (replaced)")
            row, token = JoinToken.issue(service, description=description,
                                         expires_in_s=expires_in, created_by_name="manage.py")
            AuditEntry.objects.create(
                action=Action.JOIN_TOKEN_CREATED, source="cli", path=COMMAND,
                detail=f"{row.prefix}... for {service!r}, expires {iso(row.expires_at)}"
                       + (f": {description}" if description else ""))
        return token
