from __future__ import annotations

from django.urls import path

from meshui.alerts import views

# Mounted at the site root, beside the graph and the policy pages (docs/ui.md, "Alerts").
urlpatterns = [
    path("alerts", views.alerts, name="alerts"),
    path("alerts/rules/new", views.new_rule, name="alert-rule-new"),
    path("alerts/rules/<int:rule_id>", views.rule, name="alert-rule"),
    path("alerts/rules/<int:rule_id>/edit", views.edit_rule, name="alert-rule-edit"),
    path("alerts/silences", views.silences, name="alert-silences"),
    path("alerts/contact-points", views.contact_points, name="alert-contact-points"),
    path("alerts/contact-points/new", views.new_contact_point, name="alert-contact-point-new"),
    path("alerts/contact-points/<int:point_id>/edit", views.edit_contact_point,
         name="alert-contact-point-edit"),
]
