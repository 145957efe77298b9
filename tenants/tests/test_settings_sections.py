"""Sections other apps contribute to ``/tenants/{id}/settings`` (``tenants.sections``): shown on
every read, written only when sent, inside the upsert's transaction, so a refused section leaves
the tenant's own settings as they were. The channels' real section: channels/tests/test_settings_section.py."""

from __future__ import annotations

import pytest

from agent_project.errors import ApiError
from conftest import assert_error
from tenants import sections

SETTINGS = "/tenants/{}/settings"


@pytest.fixture
def shelf(monkeypatch):
    """A section named ``shelf`` that keeps what it is given per tenant, and refuses ``{"refuse": true}``."""
    stored: dict[str, dict] = {}
    written: list[str] = []

    def read(*, tenant):
        return stored.get(tenant.pk, {"size": 0})

    def write(*, tenant, data):
        written.append(tenant.pk)
        if data.get("refuse"):
            raise ApiError(400, "invalid_shelf", "The shelf refused this.", details={"field": "shelf.refuse"})
        stored[tenant.pk] = dict(data)

    monkeypatch.setitem(sections.SECTIONS, "shelf", sections.SettingsSection(name="shelf", read=read, write=write,
                                                                             help_text="a shelf"))
    return written


def test_a_registered_section_is_read_and_written_per_tenant(tenant_a, tenant_b, client_a, client_b, shelf):
    assert client_a.get(SETTINGS.format("tenant-a")).json()["shelf"] == {"size": 0}
    body = client_a.put(SETTINGS.format("tenant-a"), {"shelf": {"size": 3}}, format="json").json()
    assert body["shelf"] == {"size": 3}
    assert client_a.get(SETTINGS.format("tenant-a")).json()["shelf"] == {"size": 3}
    assert client_b.get(SETTINGS.format("tenant-b")).json()["shelf"] == {"size": 0}
    assert shelf == ["tenant-a"]


def test_a_section_not_sent_is_not_written(tenant_a, client_a, shelf):
    assert client_a.put(SETTINGS.format("tenant-a"), {"name": "Renamed"}, format="json").status_code == 200
    assert shelf == []


def test_a_refused_section_answers_its_error_and_changes_nothing_else(tenant_a, client_a, shelf):
    response = client_a.put(SETTINGS.format("tenant-a"), {"name": "Renamed", "shelf": {"refuse": True}},
                            format="json")
    assert assert_error(response, 400, "invalid_shelf")["details"] == {"field": "shelf.refuse"}
    assert client_a.get(SETTINGS.format("tenant-a")).json()["name"] == "Tenant-A"

