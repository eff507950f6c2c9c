"""``manage.py seed_alerts FILE``: alert rules from a YAML/JSON file (``rules: [rule, ...]``,
each as ``POST /api/v1/alerts/rules`` takes it, contact points by name).

Idempotent: when any rule exists it does nothing (the demo runs it at every start, and rules
edited or deleted in the UI must survive a restart). Each rule is checked as the API checks
it; a bad one fails the command naming the rule and the field, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from meshui.alerts import rules
from meshui.alerts.models import AlertRule, ContactPoint
from meshui.alerts.schemas import RuleIn


class Command(BaseCommand):
    help = "Save the rules of FILE unless an alert rule exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        if AlertRule.objects.exists():
            self.stdout.write(f"alert rules exist; {file} not seeded")
            return
        try:
            with open(file, "rb") as f:
                document = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from exc
        raw = document.get("rules") if isinstance(document, dict) else None
        if not isinstance(raw, list):
            raise CommandError(f"{file}: expected `rules:` holding a list of rules")
        points = dict(ContactPoint.objects.values_list("name", "pk"))
        checked = []
        for index, rule in enumerate(raw):
            if not isinstance(rule, dict):
                raise CommandError(f"{file}: rules[{index}] is not a rule")
            named = rule.get("contact_points") or []
            missing = [name for name in named if name not in points]
            if missing:
                raise CommandError(f"{file}: rules[{index}]: no contact point {missing[0]!r}")
            try:
                body = RuleIn.model_validate({**rule, "contact_points": [points[n] for n in named]})
                fields = rules.check(body.model_dump(exclude_none=True))
            except ValidationError as exc:
                raise CommandError(f"{file}: rules[{index}]: {exc}") from exc
            except rules.RuleProblem as exc:
                raise CommandError(f"{file}: rules[{index}].{exc.field}: {exc}") from exc
            checked.append(fields)
        now = timezone.now()
        with transaction.atomic():
            for fields in checked:
                ids = fields.pop("contact_points")
                row = AlertRule.objects.create(created_at=now, updated_at=now, **fields)
                row.contact_points.set(ids)
        self.stdout.write(f"seeded {len(checked)} alert rules from {file}")
