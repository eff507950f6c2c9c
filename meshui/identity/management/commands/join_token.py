"""``manage.py join_token --service NAME [--expires-in S] [--description D]``: a join token.

Prints the token and nothing else on stdout (one line), so a harness can read it:
``TOKEN=$(manage.py join_token --service payments)``. The creation is audited as the API's
is (user: none, path: ``manage.py join_token``).
"""

from __future__ import annotations

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
        parser.add_argument("--service", required=True, help="the service it may join as")
        parser.add_argument("--expires-in", type=int, default=None, metavar="SECONDS",
                            help=f"lifetime, {EXPIRES_MIN_S}..{EXPIRES_MAX_S} s (default "
                                 "MESHUI_JOIN_TOKEN_TTL_S, 30 days)")
        parser.add_argument("--description", default="", help="what it is for")

    def handle(self, *args: Any, service: str, expires_in: int | None, description: str,
               **options: Any) -> None:
        problem = service_name_problem(service)
        if problem is not None:
            raise CommandError(f"--service {problem}")
        if expires_in is not None and not EXPIRES_MIN_S <= expires_in <= EXPIRES_MAX_S:
            raise CommandError(f"--expires-in must be {EXPIRES_MIN_S}..{EXPIRES_MAX_S} seconds, "
                               f"got {expires_in}")
        if len(description) > DESCRIPTION_MAX:
            raise CommandError(f"--description is at most {DESCRIPTION_MAX} characters")
        with transaction.atomic():
            row, token = JoinToken.issue(service, description=description,
                                         expires_in_s=expires_in, created_by_name="manage.py")
            AuditEntry.objects.create(
                action=Action.JOIN_TOKEN_CREATED, source="cli", path=COMMAND,
                detail=f"{row.prefix}... for {service!r}, expires {iso(row.expires_at)}"
                       + (f": {description}" if description else ""))
        self.stdout.write(token)
