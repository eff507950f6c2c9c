"""The /api/v1/ API: one NinjaAPI, every app's router, the schema generated from them."""

from __future__ import annotations

from ninja import NinjaAPI, Router

from meshui.accounts.api import router as accounts_router
from meshui.alerts.api import router as alerts_router
from meshui.alerts.notify.api import router as notify_router
from meshui.api.auth import SessionAuth, TokenAuth, guard_docs
from meshui.api.errors import install_error_handlers
from meshui.api.methods import answer_every_method
from meshui.dashboard.api import router as dashboard_router
from meshui.identity.api import router as identity_router
from meshui.policy.api import router as policy_router
from meshui.registry.api import router as registry_router

# Every app's endpoints, mounted at /api/v1/ in this order (the order of the docs page).
ROUTERS: list[Router] = [dashboard_router, registry_router, policy_router, alerts_router,
                         notify_router, identity_router, accounts_router]


api = NinjaAPI(
    title="meshui API",
    version="1",
    description="The JSON API of the meshui dashboard and control plane (docs/api.md). GET "
    "endpoints are open without login when MESHUI_PUBLIC_READ is true; everything else needs "
    "a logged-in session and, to change anything, its CSRF token.",
    urls_namespace="api-v1",
    auth=[TokenAuth(), SessionAuth()],
    docs_decorator=guard_docs,
)
install_error_handlers(api)
for router in ROUTERS:
    answer_every_method(router)
    api.add_router("", router)
