from __future__ import annotations

from django.urls import path

from meshui.api import views

urlpatterns = [
    path("graph", views.graph, name="api-graph"),
    path("services", views.services, name="api-services"),
    path("instances", views.instances, name="api-instances"),
    path("openapi.json", views.openapi, name="api-openapi"),
]
