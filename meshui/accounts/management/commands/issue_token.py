"""``manage.py issue_token USER --name NAME [--replace] [--output FILE]``: a new API token.

The token is printed, or written to FILE (mode 0600) so that it never lands in a log; the
demo writes one for meshctl at every start (``--replace`` revokes the user's earlier
tokens of that name first).
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from meshui.accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USER (printed, or written to --output)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for")
        parser.add_argument("--replace", action="store_true",
                            help="revoke the user's other tokens of this name")
        parser.add_argument("--output", help="write the token to this file (mode 0600)")

    def handle(self, *args: Any, username: str, name: str, replace: bool, output: str | None,
               **options: Any) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"there is no active user {username!r}")
        with transaction.atomic():
            if replace:
                ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).update(
                    revoked_at=timezone.now())
            row, token = ApiToken.issue(user, name)
        if output is None:
            self.stdout.write(token)
            return
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(token + "\n")
        self.stdout.write(f"token {row.prefix}... for {username} written to {output}")
