"""The per-tenant cache of the opening status must always agree with opening_status()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.services import prepare
from tenants.hours import opening_status
from tenants.models import Tenant

START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # a Monday, 07:00 in Jakarta


@pytest.mark.parametrize("hours", [
    {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    {"sat": [["22:00", "02:00"]]},
    {},
])
def test_cached_status_matches_a_fresh_one_at_every_step(hours):
    prepare._opening_cache.clear()
    tenant = Tenant(id="cache-test", name="c", working_hours=hours, holidays=[{"date": "2026-11-25", "name": "x"}],
                    timezone="Asia/Jakarta", updated_at=START)
    for step in range(0, 9 * 24 * 60, 17):  # every 17 minutes for nine days, across every boundary
        at = START + timedelta(minutes=step)
        fresh = opening_status(working_hours=hours, holidays=tenant.holidays, timezone=tenant.timezone, at=at)
        assert prepare._opening(tenant, at) == fresh, at


def test_editing_the_tenant_invalidates_the_cache():
    prepare._opening_cache.clear()
    tenant = Tenant(id="cache-edit", name="c", working_hours={}, holidays=[], timezone="Asia/Jakarta",
                    updated_at=START)
    assert prepare._opening(tenant, START).always_open
    tenant.working_hours = {"mon": [["20:00", "21:00"]]}
    tenant.updated_at = START + timedelta(seconds=1)
    assert not prepare._opening(tenant, START).is_open


def test_an_earlier_instant_is_never_answered_from_a_later_one():
    prepare._opening_cache.clear()
    hours = {"mon": [["09:00", "17:00"]]}
    tenant = Tenant(id="cache-back", name="c", working_hours=hours, holidays=[], timezone="Asia/Jakarta",
                    updated_at=START)
    later = START + timedelta(hours=3)  # Monday 10:00 in Jakarta: open
    assert prepare._opening(tenant, later).is_open
    assert not prepare._opening(tenant, START).is_open  # 07:00: not yet open
