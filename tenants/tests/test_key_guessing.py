"""Keys against guessers: several keys may share a lookup prefix (a custom key sharing
another's prefix answered 409, telling that prefix exists), custom keys must be long and
random, a burst of invalid keys from one address is throttled (300 got 300 × 401), and no
log line carries a key sent in the query string."""

from __future__ import annotations

import io
import json
import logging

import pytest

from conftest import assert_error
from tenants import keys

pytestmark = pytest.mark.django_db
SETTINGS = "/tenants/{}/settings"
RANDOM_A = "Xq3vR9tLm2WzP8sKd4NbY7cJh6Gf5Tu1Ve0Ai"
RANDOM_B = "Zp7wC2nQk5Hs9Ld3Rb8Mx4Ty6Fj1Ug0Ko2Ea"


def test_keys_may_share_a_lookup_prefix(tenant_a, tenant_b, client_a, client_b, api_client):
    shared = tenant_a.test_key[:keys.PREFIX_LENGTH]
    mine = shared + RANDOM_A
    response = client_b.put(SETTINGS.format("tenant-b"), {"api_key": mine}, format="json")
    assert response.status_code == 200 and response.json()["api_key"] == mine  # no 409: nothing learned
    assert api_client(mine).get(SETTINGS.format("tenant-b")).json()["tenant_id"] == "tenant-b"
    assert api_client(tenant_a.test_key).get(SETTINGS.format("tenant-a")).json()["tenant_id"] == "tenant-a"
    assert_error(api_client(shared + RANDOM_B).get(SETTINGS.format("tenant-b")), 401, "invalid_api_key")


@pytest.mark.parametrize("key, why", [
    ("short-key", "at least 32 characters"),
    ("sk_live_" + "a" * 40, "random"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "random"),
    ("passwordpasswordpasswordpassword", "random"),
    ("my key with spaces in it 0123456789 Xq3vR9", "without spaces"),
])
def test_custom_keys_must_be_long_and_random(global_client, key, why):
    error = assert_error(global_client.put(SETTINGS.format("weak"), {"api_key": key}, format="json"), 422,
                         "weak_api_key")
    assert why in error["message"]


def test_the_same_key_twice_is_refused_like_a_weak_one(tenant_a, tenant_b, client_b):
    error = assert_error(client_b.put(SETTINGS.format("tenant-b"), {"api_key": tenant_a.test_key}, format="json"),
                         422, "weak_api_key")
    assert "random" in error["message"]


def test_generated_keys_pass_the_custom_key_rules():
    assert all(keys.key_weakness(keys.key_generate()) is None for _ in range(200))


def test_a_burst_of_invalid_keys_is_throttled_per_address(tenant_a, api_client, settings):
    settings.AUTH_THROTTLE_ENABLED = True
    settings.AUTH_FAILURE_LIMIT = 5
    settings.AUTH_FAILURE_WINDOW_SECONDS = 60
    guesser = [api_client(f"sk_live_guess{n:04d}" + RANDOM_A) for n in range(8)]
    answers = [c.get(SETTINGS.format("tenant-a"), REMOTE_ADDR="203.0.113.9") for c in guesser]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 3
    error = assert_error(answers[-1], 429, "too_many_failed_authentications")
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60 and error["details"]["retry_after_seconds"] >= 1
    # the right key from that address waits too (a 200 would tell the guesser it found one) ...
    owner = api_client(tenant_a.test_key)
    assert owner.get(SETTINGS.format("tenant-a"), REMOTE_ADDR="203.0.113.9").status_code == 429
    # ... a forged X-Forwarded-For does not get the guesser out (no proxy is trusted by default) ...
    assert guesser[0].get(SETTINGS.format("tenant-a"), REMOTE_ADDR="203.0.113.9",
                          HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    # ... and other addresses are not affected
    assert owner.get(SETTINGS.format("tenant-a"), REMOTE_ADDR="198.51.100.7").status_code == 200


def test_behind_a_proxy_the_forwarded_address_counts(tenant_a, api_client, settings):
    settings.AUTH_THROTTLE_ENABLED = True
    settings.AUTH_FAILURE_LIMIT = 2
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    bad = api_client("sk_live_nope" + RANDOM_A)
    for _ in range(3):
        bad.get(SETTINGS.format("tenant-a"), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    owner = api_client(tenant_a.test_key)
    assert owner.get(SETTINGS.format("tenant-a"), REMOTE_ADDR="10.0.0.2",
                     HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200


def test_a_key_in_the_query_string_never_reaches_the_log(tenant_a, client_a):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from agent_project.requestlog import JsonFormatter

    handler.setFormatter(JsonFormatter())
    logging.getLogger("layan.request").addHandler(handler)
    try:
        client_a.get("/contacts", {"api_key": tenant_a.test_key, "token": "dev_TopSecret123",
                                   "q": "budi@example.com", "phone": "+6281234567890"})
    finally:
        logging.getLogger("layan.request").removeHandler(handler)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["path"].startswith("/contacts?api_key=****&token=****&q=b***@e***.com&phone=+62")
    for secret in (tenant_a.test_key, "TopSecret", "budi@example.com", "6281234567890"):
        assert secret not in stream.getvalue()
