"""Schema fuzzing: schemathesis generates requests from /api/schema for every
operation (a bounded number of examples each, with tenant A's valid key) and sends
them through the real WSGI application. No answer may be a 5xx, and every answer
must match what the schema documents for its status (body and content type).

SCHEMATHESIS_MAX_EXAMPLES raises the bound for a longer local run."""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "6"))

schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", get_wsgi_application())


@pytest.fixture
def fuzz_key(tenant_a):
    """Tenant A's key, on a healthy installation (both queues' workers have beaten). As Django's own test client
    does, requests must not close the database connection at their end: it holds the test's transaction."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from django.utils import timezone

    from agent_project.testing.heartbeats import all_beat

    all_beat(timezone.now())

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield tenant_a.test_key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_its_schema(case, fuzz_key):
    case.call_and_validate(headers={"X-API-Key": fuzz_key},
                           checks=[not_a_server_error, response_schema_conformance, content_type_conformance])
