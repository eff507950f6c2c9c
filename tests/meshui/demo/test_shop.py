from __future__ import annotations

import random

from meshui.demo.shop import Behaviour, ShopApp
from meshui.demo.topology import INSTANCES, ROUTES, route_for


def test_reviews_v2_also_calls_ratings_but_v1_does_not() -> None:
    assert ("ratings", "GET", "/ratings/42") in route_for("reviews", "v2", "GET", "/reviews/42")
    assert route_for("reviews", "v1", "GET", "/reviews/42") == ()


def test_every_called_service_has_an_instance() -> None:
    running = {instance.service for instance in INSTANCES}
    called = {call[0] for routes in ROUTES.values() for route in routes for call in route.calls}
    assert called <= running


async def test_a_leaf_service_answers_without_calling_anyone() -> None:
    app = ShopApp("inventory", "v1", proxy=None, behaviour=Behaviour(base_delay_s=0))

    status, body = await app.handle("GET", "/stock", [])

    assert status == 200
    assert body == {"service": "inventory", "version": "v1", "calls": []}


async def test_payments_fails_at_its_configured_rate() -> None:
    app = ShopApp("payments", "v1", proxy=None, rng=random.Random(7),
                  behaviour=Behaviour(base_delay_s=0, failure_rate=0.3))

    statuses = [(await app.handle("POST", "/charge", []))[0] for _ in range(1000)]

    assert 250 <= statuses.count(503) <= 350
    assert set(statuses) == {200, 503}


async def test_an_unknown_route_is_a_404_naming_it() -> None:
    app = ShopApp("catalog", "v1", proxy=None, behaviour=Behaviour(base_delay_s=0))

    status, body = await app.handle("DELETE", "/items", [])

    assert status == 404
    assert "DELETE /items" in body["error"]
