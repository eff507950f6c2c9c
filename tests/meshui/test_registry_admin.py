"""The registry in Django's admin: services and instances listed, instances read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from meshui.registry.models import Instance, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(meshui_settings: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def test_the_admin_lists_services_and_their_instances(admin_client: Client) -> None:
    catalog = Service.objects.create(name="catalog")
    Instance.objects.create(proxy_id="catalog-1", service=catalog, version="v2",
                            address="127.0.0.1:9001", connected=True, last_seen=timezone.now())

    index = admin_client.get("/admin/").content.decode()
    assert "/admin/registry/service/" in index and "/admin/registry/instance/" in index
    services = admin_client.get("/admin/registry/service/")
    assert services.status_code == 200 and "catalog" in services.content.decode()
    instances = admin_client.get("/admin/registry/instance/?connected__exact=1")
    assert instances.status_code == 200 and "catalog-1" in instances.content.decode()
    detail = admin_client.get(f"/admin/registry/service/{catalog.pk}/change/")
    assert detail.status_code == 200 and "catalog-1" in detail.content.decode()


def test_an_instance_row_belongs_to_the_control_channel_not_to_the_admin(
    admin_client: Client,
) -> None:
    row = Instance.objects.create(proxy_id="catalog-1", address="127.0.0.1:9001",
                                  service=Service.objects.create(name="catalog"))
    page = admin_client.get(f"/admin/registry/instance/{row.pk}/change/").content.decode()
    assert 'name="address"' not in page  # shown, not editable
    admin_client.post(f"/admin/registry/instance/{row.pk}/change/",
                      {"address": "10.6.6.6:1", "proxy_id": "impostor"})
    row.refresh_from_db()
    assert (row.proxy_id, row.address) == ("catalog-1", "127.0.0.1:9001")
