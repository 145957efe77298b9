"""The admin login accepted 30 wrong passwords without a pause: now a user name and client
address pair is locked out after a few failures, for a while, the right password included."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admin_user(settings):
    settings.ADMIN_LOGIN_FAILURE_LIMIT = 5
    settings.ADMIN_LOGIN_LOCKOUT_SECONDS = 900
    return User.objects.create_superuser("boss", "boss@example.com", "right-password-123")


def _login(password, address="203.0.113.9", username="boss"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response, client


def test_wrong_passwords_lock_the_account_for_that_address(admin_user):
    answers = [_login(f"guess-{n}")[0] for n in range(5)]
    assert all(a.status_code == 200 and "correct username and password" in a.content.decode() for a in answers[:4])
    assert "Too many failed logins" in answers[4].content.decode()
    response, client = _login("right-password-123")
    assert response.status_code == 200 and "Too many failed logins" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # not logged in
    # the same account from another address, and another account from this one, are not locked
    assert _login("right-password-123", address="198.51.100.7")[0].status_code == 302
    User.objects.create_superuser("other", "o@example.com", "other-password-123")
    assert _login("other-password-123", username="other")[0].status_code == 302


def test_the_lock_ends_and_a_good_login_clears_the_count(admin_user, settings):
    settings.ADMIN_LOGIN_LOCKOUT_SECONDS = 5  # from the first failure (each costs a password hash)
    started = time.monotonic()
    for n in range(5):
        _login(f"guess-{n}")
    assert "Too many failed logins" in _login("right-password-123")[0].content.decode()
    time.sleep(max(0.0, started + 6.5 - time.monotonic()))  # the first failure came after `started`
    assert _login("right-password-123")[0].status_code == 302
    for n in range(4):  # the success started the count afresh
        _login(f"guess-{n}")
    assert _login("right-password-123")[0].status_code == 302
