"""``manage.py ensure_user NAME [--role viewer|operator|admin] [--superuser]``: create or
update a user, idempotently (the demo uses it).

Without ``--superuser`` the user is an ordinary one (no staff or superuser rights, taken
away if an earlier run gave them): the demo's printed login must not own the whole site.
``--role`` puts the user in exactly that role's group (meshui/accounts/roles.py).

The password comes from ``MESHUI_USER_PASSWORD`` (never from the command line, which other
users of the machine can read in the process list).
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from meshui.accounts.roles import ROLES


class Command(BaseCommand):
    help = "Create or update a user whose password is MESHUI_USER_PASSWORD."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--superuser", action="store_true", help="make it a superuser")
        parser.add_argument("--role", choices=[r.value for r in ROLES],
                            help="its one role group (viewer, operator or admin)")

    def handle(self, *args: Any, username: str, superuser: bool = False, role: str | None = None,
               **options: Any) -> None:
        password = os.environ.get("MESHUI_USER_PASSWORD", "")
        if not password:
            raise CommandError("MESHUI_USER_PASSWORD must be set to the user's password")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = superuser
        user.is_active = True
        user.set_password(password)
        user.save()
        if role is not None:
            user.groups.remove(*Group.objects.filter(name__in=[r.value for r in ROLES]))
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        kind = "superuser" if superuser else (f"{role}" if role else "user")
        self.stdout.write(f"{'created' if created else 'updated'} {kind} {username}")
