"""(Found in review, now fixed.) CHAT_MAX_MESSAGE_CHARS (4000) is checked by RequestLimitsMiddleware only for JSON bodies;
/chat also accepts form bodies (DRF's FormParser/MultiPartParser), where the serializer's own
max_length (8000) applies: the same message is 422 message_too_long as JSON and stored as form."""
import pytest

from conftest import assert_error

from conversations.models import Message

pytestmark = pytest.mark.django_db

LONG = "Halo kak mau tanya " * 300  # 5700 characters: over the 4000 limit, under the serializer's 8000


def test_json_refuses_it(client_a, tenant_a):
    response = client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": LONG}]},
                             format="json")
    assert response.status_code == 422 and response.json()["error"]["code"] == "message_too_long"


@pytest.mark.parametrize("fmt", ["multipart", "urlencoded"])
def test_form_body_is_held_to_the_same_limit(client_a, tenant_a, scoped, fmt):
    from urllib.parse import urlencode

    data = {"user_id": "u1", "messages[0]role": "user", "messages[0]content": LONG}
    if fmt == "multipart":
        response = client_a.post("/chat", data, format="multipart")
    else:
        response = client_a.post("/chat", urlencode(data), content_type="application/x-www-form-urlencoded")
    # observed: 200, and a 5700-character user turn stored (and sent to the model)
    assert_error(response, 415, "unsupported_media_type")  # /chat takes JSON, as the seed did
    with scoped(tenant_a):
        assert not Message.objects.exists()
