"""What gunicorn answers itself, before Django sees the request, tried against a real
gunicorn started with agent_project/gunicorn_conf.py: 414 and 431 in the API's JSON error
shape (they were HTML pages), and a 413 for a declared body over the limit closes the
connection with ``Connection: close`` (it said keep-alive, then closed)."""

from __future__ import annotations

import json
import socket

import pytest

from agent_project.tests.webserver import CONF, Gunicorn, child_env, free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env(MAX_BODY_BYTES="1000")
    port = free_port()
    web = Gunicorn([*CONF, "--bind", f"127.0.0.1:{port}", "agent_project.wsgi"], port=port, env=env,
                   log_path=tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    yield port
    web.stop()


def _exchange(port: int, raw: bytes) -> tuple[bytes, bool]:
    """Send ``raw``, read one response; answer it and whether the server then closed the socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        chunked = b"transfer-encoding: chunked" in head.lower()
        while (len(body) < length) if not chunked else not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        if chunked:
            body = _dechunk(body)
        sock.settimeout(2)
        try:
            closed = sock.recv(1) == b""
        except (TimeoutError, socket.timeout):
            closed = False
        except ConnectionResetError:
            closed = True
        return head + b"\r\n\r\n" + body, closed


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if not n:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def _json_error(response: bytes, status: int, code: str) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"] and "details" in error
    return error


def test_a_request_line_too_long_answers_414_json(server):
    response, closed = _exchange(server, b"GET /kb/search?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    _json_error(response, 414, "uri_too_long")


def test_a_long_url_under_the_raised_limit_reaches_the_app(server):
    response, _ = _exchange(server, b"GET /health?q=" + b"a" * 6000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'"database":{"ok":true' in response  # /health itself answered (503 without a task worker beside it)


@pytest.mark.parametrize("headers", [b"X-Big: " + b"b" * 9000 + b"\r\n",
                                     b"".join(b"X-H%d: v\r\n" % n for n in range(120))])
def test_headers_too_large_or_too_many_answer_431_json(server, headers):
    response, _ = _exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    error = _json_error(response, 431, "headers_too_large")
    assert "bbbb" not in error["message"]


def test_a_malformed_request_answers_400_json(server):
    response, _ = _exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    _json_error(response, 400, "bad_request")


def test_a_413_closes_the_connection(server):
    request = (b"POST /kb/upsert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 5000000\r\nConnection: keep-alive\r\n\r\n" + b"{" * 100)
    response, closed = _exchange(server, request)
    _json_error(response, 413, "payload_too_large")
    head = response.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head and closed
    # a body within the limit keeps the connection alive as before
    response, closed = _exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    # Django's answer (503: no task worker beats beside this server), on a connection kept alive
    assert response.startswith(b"HTTP/1.1 503 ") and b'"database":{"ok":true' in response and not closed
