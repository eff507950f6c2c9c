from __future__ import annotations

from django.urls import path

from meshui.alerts import views

# Mounted at the site root, beside the graph and the policy pages (docs/ui.md, "Alerts").
urlpatterns = [
    path("alerts", views.alerts, name="alerts"),
    path("alerts/rules/new", views.new_rule, name="alert-rule-new"),
    path("alerts/rules/<int:rule_id>", views.rule, name="alert-rule"),
    path("alerts/rules/<int:rule_id>/edit", views.edit_rule, name="alert-rule-edit"),
]
