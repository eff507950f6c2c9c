"""``manage.py seed_policy FILE``: the first revision (source ``seed``) from a YAML/JSON file.

Idempotent: when any revision exists it does nothing (the demo runs it at every start, and
a revision written in the UI must survive a restart). The file is validated as every
revision is (meshui/policy/validation.py); a bad one fails the command naming the field.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from meshui.policy.models import Revision, Source
from meshui.policy.revisions import InvalidPolicy, StaleParent, write


class Command(BaseCommand):
    help = "Write FILE as policy revision 1 (source seed) unless a revision exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("-m", "--message", default="", help="the revision's message")

    def handle(self, *args: Any, file: str, message: str, **options: Any) -> None:
        current = Revision.objects.current()
        if current is not None:
            self.stdout.write(f"policy revision {current.number} exists; {file} not seeded")
            return
        try:
            with open(file, "rb") as f:
                document = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from exc
        try:
            written = write(None, document, parent=0, source=Source.SEED,
                            message=message or f"seeded from {file}")
        except InvalidPolicy as exc:
            raise CommandError(f"{file}: {exc}") from exc
        except StaleParent:
            self.stdout.write("another process seeded the policy first")
            return
        for warning in written.warnings:
            self.stdout.write(f"warning: {warning.field}: {warning.detail}")
        self.stdout.write(f"seeded policy revision {written.revision.number} from {file}")
