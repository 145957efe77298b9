"""(Found in review, now fixed.) GET /conversations?since=/until= with a valid ISO timestamp whose UTC offset Python accepts
(up to ±23:59) but PostgreSQL does not (±15:59)."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", ["until=2026-11-25T10:00:00%2B23:59", "since=2026-11-25T10:00:00-16:00"])
def test_far_utc_offset_is_a_clear_answer_not_a_500(client_a, tenant_a, query):
    client_a.raise_request_exception = False
    response = client_a.get(f"/conversations?{query}")
    # observed: 500 internal_error (DataError: time zone displacement out of range)
    assert response.status_code in (200, 400), (response.status_code, response.content[:200])
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "invalid_filter"
