"""Create a login (or reset its password) so the demo can print one that works."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or update a staff user; the password comes from MESHUI_USER_PASSWORD."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        password = os.environ.get("MESHUI_USER_PASSWORD")
        if not password:
            raise CommandError("set MESHUI_USER_PASSWORD to the password the user should have")
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'updated'} user {username}")
