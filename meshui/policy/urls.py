from __future__ import annotations

from django.urls import path

from meshui.policy import views

# Mounted at the site root, beside the graph page (docs/ui.md).
urlpatterns = [
    path("services/<str:name>", views.service, name="service"),
    path("policy/history", views.history, name="policy-history"),
    path("policy/edit", views.edit, name="policy-edit"),
    path("policy/audit", views.audit, name="policy-audit"),
]
