"""Alert rules, where each stands on each of its targets, and every state change (docs/alerts.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from meshui.alerts.metrics import METRICS
from meshui.alerts.states import OPS, State

SEVERITIES = ("critical", "warning", "info")


KINDS = ("webhook", "email", "slack")


class ContactPoint(models.Model):
    """Where notifications go, how alerts are grouped for it, and whether it works.

    ``config`` holds the kind's address: ``{"url"}`` for a webhook or Slack's incoming
    webhook, ``{"address"}`` (one or more, comma separated) for email. The grouping and
    timing fields are Alertmanager's route options with its defaults. ``failing_since`` is
    set by a permanent error (a 4xx, a refused address) or retries given up, and cleared by
    the next message or test that gets through (``meshui.alerts.notify.delivery``).
    """

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=[(k, k) for k in KINDS])
    config = models.JSONField(default=dict, blank=True)
    send_resolved = models.BooleanField(default=True)
    group_by = models.JSONField(default=list, blank=True)
    group_wait_s = models.PositiveIntegerField(default=30)
    group_interval_s = models.PositiveIntegerField(default=300)
    repeat_interval_s = models.PositiveIntegerField(default=4 * 3600)
    mute_times = models.JSONField(default=list, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    failing_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Silence(models.Model):
    """Matchers and a time range: alerts they match are not notified while it is active
    (they are still evaluated, and shown silenced)."""

    matchers = models.JSONField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at", "-pk"]

    def __str__(self) -> str:
        return f"silence {self.pk} until {self.ends_at:%Y-%m-%d %H:%M}"


class NotificationGroup(models.Model):
    """An aggregation group: a contact point's alerts sharing their grouping labels
    (``meshui.alerts.notify.grouping`` decides; this is its state between passes)."""

    contact_point = models.ForeignKey(ContactPoint, on_delete=models.CASCADE,
                                      related_name="groups")
    key = models.CharField(max_length=64, help_text="sha256 of the grouping labels")
    labels = models.JSONField()
    created_at = models.DateTimeField()
    flushed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    notified = models.JSONField(default=dict, blank=True,
                                help_text="the firing alerts the last message carried")
    next_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact_point", "key"],
                                               name="alerts_group_one_per_key")]


class Delivery(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Notification(models.Model):
    """One message to one contact point: the Alertmanager webhook body (``payload``) the
    senders render, and where its delivery stands."""

    contact_point = models.ForeignKey(ContactPoint, on_delete=models.CASCADE,
                                      related_name="notifications")
    group = models.ForeignKey(NotificationGroup, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="notifications")
    group_labels = models.JSONField(default=dict)
    status = models.CharField(max_length=16, help_text="firing or resolved")
    payload = models.JSONField()
    alerts = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"],
                                name="alerts_notification_due")]


class DeliveryAttempt(models.Model):
    """One try at sending a notification or a test message, whatever came of it."""

    contact_point = models.ForeignKey(ContactPoint, on_delete=models.CASCADE,
                                      related_name="attempts")
    notification = models.ForeignKey(Notification, null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="attempt_rows")
    status = models.CharField(max_length=16, help_text="firing, resolved or test")
    at = models.DateTimeField()
    ok = models.BooleanField()
    permanent = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["contact_point", "-at"], name="alerts_attempt_cp_at")]


class AlertRuleQuerySet(models.QuerySet["AlertRule"]):
    def for_listing(self) -> AlertRuleQuerySet:
        return self.order_by("name", "pk").prefetch_related("contact_points")


class AlertRule(models.Model):
    """One rule: a metric of a target over a window against a fire and a recover threshold.

    The fields are the API's (docs/api.md, "Alerts"); ``meshui.alerts.schemas.RuleIn``
    checks them, ``meshui.alerts.rules`` turns a row into what the evaluator steps.
    """

    name = models.CharField(max_length=200, unique=True)
    target = models.JSONField(help_text="a service, version, edge or instance, or a pattern")
    metric = models.CharField(max_length=32, choices=[(m, m) for m in METRICS])
    window_s = models.PositiveIntegerField()
    op = models.CharField(max_length=1, choices=[(op, op) for op in OPS])
    fire = models.FloatField()
    recover = models.FloatField()
    for_s = models.PositiveIntegerField(default=0)
    keep_firing_s = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=16, choices=[(s, s) for s in SEVERITIES],
                                default="warning")
    labels = models.JSONField(default=dict, blank=True)
    contact_points = models.ManyToManyField(ContactPoint, blank=True, related_name="rules")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")

    objects = AlertRuleQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


STATE_CHOICES = [(state.value, state.value) for state in State]
# A target's key is its JSON (``targets.Target.key``): three names of up to 255 characters.
TARGET_KEY_MAX = 1024


class AlertStateQuerySet(models.QuerySet["AlertState"]):
    def for_listing(self) -> AlertStateQuerySet:
        return self.select_related("rule").order_by("rule__name", "rule_id", "target_key")


class AlertState(models.Model):
    """Where one rule stands on one concrete target (a pattern rule has one per match)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    target_key = models.CharField(max_length=TARGET_KEY_MAX)
    target = models.JSONField()
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.NORMAL)
    since = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    last_evaluated = models.DateTimeField(null=True, blank=True)
    # When the current firing began (Firing or Recovering since then): a notification's
    # startsAt. Null while not firing.
    firing_since = models.DateTimeField(null=True, blank=True)

    objects = AlertStateQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "target_key"],
                                               name="alerts_state_one_per_rule_target")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.target_key}: {self.state}"


class AlertTransitionQuerySet(models.QuerySet["AlertTransition"]):
    def newest_first(self) -> AlertTransitionQuerySet:
        return self.order_by("-at", "-pk")


class AlertTransition(models.Model):
    """One state change of a rule on a target: what notifications consume, what history shows.

    ``cycle`` is the evaluation cycle that made it (``evaluator.cycle_of``); a target's
    state row is evaluated at most once per cycle, so it changes at most once per cycle.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="transitions")
    target_key = models.CharField(max_length=TARGET_KEY_MAX)
    target = models.JSONField()
    from_state = models.CharField(max_length=16, choices=STATE_CHOICES)
    to_state = models.CharField(max_length=16, choices=STATE_CHOICES)
    value = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    at = models.DateTimeField(db_index=True)
    cycle = models.BigIntegerField(help_text="the evaluation cycle (epoch seconds) it came from")

    objects = AlertTransitionQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["rule", "-at"], name="alerts_transition_rule_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.rule_id} {self.from_state} -> {self.to_state}"
