from __future__ import annotations

from django.urls import path

from meshui.dashboard import views

# Mounted at the site root. A new page is a view here, a template in
# templates/dashboard/ and its one JS file in static/dashboard/.
urlpatterns = [
    path("", views.graph, name="graph"),
    path("traces", views.traces, name="traces"),
    path("traces/<str:trace_id>", views.trace, name="trace"),
]
