"""The operator playground in headless Chromium (Playwright driving the system browser)
against the live test server: log in, send a message, see bubbles, sources and the prompt."""

from __future__ import annotations

import tempfile

import pytest
from playwright.sync_api import sync_playwright

from agent_project.testing.needs import chromium_path
from conversations.models import Conversation

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls
    # from a thread with a running loop unless told this is deliberate (tests only).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections
    with tempfile.TemporaryDirectory(prefix="layan-chromium-") as profile, \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            context.close()
            # With the loop running, Django's connections are context-local: close the
            # ones the test opened here, or they outlive the run and block dropping the test DB.
            connections.close_all()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_chats_in_the_playground(live_server, kb_a, django_user_model, browser_page, scoped):
    django_user_model.objects.create_superuser("operator", "ops@example.com", "s3cret-pass-word")
    page = browser_page
    page.goto(f"{live_server.url}/admin/conversations/conversation/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass-word")
    page.click("input[type=submit]")
    page.click("text=Chat playground")
    page.wait_for_selector("#pg-form")

    page.select_option("#pg-tenant", "tenant-a")
    page.select_option("#pg-channel", "whatsapp")
    page.fill("#pg-message", "Berapa harga buket mawar merah?")
    page.click("#pg-send")
    page.wait_for_selector(".turn.assistant .bubble")

    bubbles = page.locator(".turn.assistant .bubble").all_inner_texts()
    assert len(bubbles) >= 2 and any("Rp 350.000" in b for b in bubbles)
    assert page.locator(".turn.user .bubble").inner_text() == "Berapa harga buket mawar merah?"
    used = page.locator("#pg-sources tr.source.used").all_inner_texts()
    assert used and "Daftar harga buket" in used[0]
    assert page.locator("#pg-prompt").inner_text().count("Kamu asisten Toko A.") == 1
    assert "offline" in page.locator(".turn.assistant .meta").inner_text()

    # a question the knowledge base cannot answer: an honest "don't know", offered a human
    page.fill("#pg-message", "Apakah bisa bayar pakai kripto dogecoin?")
    page.click("#pg-send")
    page.wait_for_function("document.querySelectorAll('.turn.assistant').length === 2")
    assert "hubungkan dengan tim" in page.locator(".turn.assistant").nth(1).inner_text()

    with scoped(kb_a):
        conversation = Conversation.objects.get(user_id="playground-operator", channel="whatsapp")
        assert conversation.messages.count() == 4
