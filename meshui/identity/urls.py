from __future__ import annotations

from django.urls import path

from meshui.identity import views

# Mounted at the site root, beside the graph and the alert pages (docs/ui.md).
urlpatterns = [
    path("certificates", views.certificates, name="certificates"),
]
