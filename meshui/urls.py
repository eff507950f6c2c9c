"""The site's URLs: each app's own urls.py, the API, the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from meshui.api.v1 import api

urlpatterns = [
    path("", include("meshui.dashboard.urls")),
    path("", include("meshui.policy.urls")),
    path("", include("meshui.alerts.urls")),
    path("", include("meshui.identity.urls")),
    path("api/v1/", api.urls),
    path("accounts/", include("meshui.accounts.urls")),
    path("admin/", admin.site.urls),
]
