"""The guarded outbound client (agent_project.lib.outbound) on its own: what it refuses
before connecting, what the installation may open, DNS answers checked and pinned, and
redirects. The internal services are local fake servers on 127.0.0.1; names are answered
by the tests' fake DNS."""

from __future__ import annotations

import ipaddress

import pytest

from agent_project.lib import outbound
from agent_project.testing.fakehttp import FakeHTTPServer, Response

SECRET = '{"internal": "SECRET-INTERNAL-TOKEN-42"}'

# Every destination the attack used, with the rule it breaks.
REFUSED = [
    ("http://127.0.0.1:{port}/x", "private address"),
    ("http://localhost:{port}/x", "private address"),
    ("http://[::1]:{port}/x", "private address"),
    ("http://0.0.0.0:{port}/x", "private address"),
    ("http://[::ffff:127.0.0.1]:{port}/x", "private address"),
    ("http://user:pass@127.0.0.1:{port}/x", "credentials"),
    ("http://169.254.169.254/latest/meta-data/", "private address"),
    ("http://10.1.2.3/x", "private address"),
    ("http://172.16.5.4/x", "private address"),
    ("http://192.168.1.1/x", "private address"),
    ("http://100.64.0.1/x", "private address"),
    ("http://[fd00::1]/x", "private address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "private address"),
    ("ftp://files.shop.test/x", "scheme"),
    ("http://rebind.shop.test:{port}/x", "private address"),  # a DNS name resolving to loopback
    ("http://[64:ff9b::7f00:1]/x", "private address"),  # NAT64 form of 127.0.0.1
]


@pytest.fixture
def internal():
    """An internal service that must never be reached: it would leak its token."""
    server = FakeHTTPServer(lambda request: Response(404, raw=SECRET.encode())).start()
    yield server
    server.stop()


@pytest.mark.parametrize("url, rule", REFUSED)
def test_refused_destinations_are_refused_when_set_and_when_called(internal, fake_dns, url, rule):
    fake_dns.add("rebind.shop.test", "127.0.0.1")
    url = url.format(port=internal.port)
    with pytest.raises(outbound.OutboundError) as at_set:
        outbound.url_check(url)
    assert at_set.value.rule == rule
    with pytest.raises(outbound.OutboundError) as at_send:
        outbound.fetch(method="POST", url=url, content=b"{}", timeout=2, max_bytes=1000)
    assert at_send.value.reason in (outbound.REFUSED_PRIVATE, outbound.REFUSED_URL)
    assert internal.requests == []


@pytest.mark.parametrize("address, refused", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local (cloud metadata)"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("10.0.0.5", "private or reserved"), ("172.16.3.4", "private or reserved"), ("192.168.1.1", "private or reserved"),
    ("100.64.0.1", "private or reserved"), ("fd00::1", "private or reserved"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),  # NAT64 around 169.254.169.254
    ("8.8.8.8", ""), ("2001:4860:4860::8888", ""),
])
def test_address_classes(address, refused):
    assert outbound.address_refusal(ipaddress.ip_address(address)) == refused


def test_a_public_name_passes_and_an_unresolvable_one_is_left_to_the_send(fake_dns):
    fake_dns.add("hooks.shop.test", "93.184.215.14")
    outbound.url_check("https://hooks.shop.test/layan")
    outbound.url_check("https://not-yet.shop.test/layan")  # DNS may be set up later: checked at each send
    with pytest.raises(outbound.OutboundError) as at_send:
        outbound.fetch(method="GET", url="https://not-yet.shop.test/layan", timeout=1, max_bytes=10)
    assert (at_send.value.code, at_send.value.reason) == ("unreachable", "connection failed")


def test_the_installation_opens_private_hosts_by_name_address_and_port(internal, settings, fake_dns):
    internal.respond = lambda request: Response(200, {"ok": True})
    fake_dns.add("erp.internal.test", "127.0.0.1")
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{internal.port}", "erp.internal.test"]
    assert outbound.fetch(method="GET", url=f"{internal.url}/a", timeout=2, max_bytes=100).status == 200
    assert outbound.fetch(method="GET", url=f"http://erp.internal.test:{internal.port}/b", timeout=2,
                          max_bytes=100).status == 200
    for url in (f"http://127.0.0.1:{internal.port + 1}/", "http://10.0.0.5/", "http://localhost/"):
        with pytest.raises(outbound.OutboundError):
            outbound.url_check(url)
    assert [r.path for r in internal.requests] == ["/a", "/b"]
    assert internal.requests[1].headers["Host"] == f"erp.internal.test:{internal.port}"
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = []
    settings.OUTBOUND_ALLOW_PRIVATE = True
    outbound.url_check("http://10.0.0.5/")


def test_the_address_checked_is_the_address_called(internal, settings, fake_dns):
    """A name that resolves public at set time and to loopback at send time (DNS changed,
    or a rebinding attack) is refused at the send; the connection never goes to a name."""
    fake_dns.add("hooks.shop.test", "93.184.215.14")
    outbound.url_check(f"http://hooks.shop.test:{internal.port}/layan")
    fake_dns.add("hooks.shop.test", "93.184.215.14", "127.0.0.1")  # one bad address among good ones
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.fetch(method="POST", url=f"http://hooks.shop.test:{internal.port}/layan", content=b"{}", timeout=2,
                       max_bytes=100)
    assert refused.value.reason == "refused: private address"
    assert internal.requests == []


def test_a_public_host_redirecting_to_a_private_one_is_not_followed(internal, settings, fake_dns):
    public = FakeHTTPServer(lambda request: Response(302, headers={"Location": f"{internal.url}/steal"})).start()
    try:
        fake_dns.add("shop.public.test", "127.0.0.1")
        settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = ["shop.public.test"]  # plays a public host, nothing else opened
        url = f"http://shop.public.test:{public.port}/order"
        with pytest.raises(outbound.OutboundError) as refused:
            outbound.fetch(method="GET", url=url, timeout=2, max_bytes=1000)
        assert refused.value.reason == "refused: redirect to another host"
        # a webhook follows no redirect at all: the tenant reads the status class
        fetched = outbound.fetch(method="POST", url=url, content=b"{}", timeout=2, max_bytes=0, max_redirects=0,
                                 read_body=False)
        assert outbound.status_reason(fetched.status) == "http 3xx"
        assert len(public.requests) == 2 and internal.requests == []
    finally:
        public.stop()


def test_credentials_in_a_url_are_never_sent(internal, settings):
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{internal.port}"]
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.fetch(method="GET", url=f"http://user:pass@127.0.0.1:{internal.port}/", timeout=2, max_bytes=10)
    assert refused.value.rule == "credentials" and internal.requests == []


def test_failures_read_back_as_fixed_reasons(internal, settings):
    """A timeout, a closed port and an oversized answer: a fixed phrase, no socket text."""
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    internal.respond = lambda request: Response(200, raw=b"x" * 5000, delay=0.0)
    with pytest.raises(outbound.OutboundError) as big:
        outbound.fetch(method="GET", url=internal.url, timeout=2, max_bytes=100)
    assert big.value.reason == "response too large"
    internal.respond = lambda request: Response(200, {}, delay=1.5)
    with pytest.raises(outbound.OutboundError) as slow:
        outbound.fetch(method="GET", url=internal.url, timeout=0.3, max_bytes=100)
    assert slow.value.reason == "timeout"
    closed = FakeHTTPServer(lambda request: Response()).start()
    port = closed.port
    closed.stop()
    with pytest.raises(outbound.OutboundError) as refused:
        outbound.fetch(method="GET", url=f"http://127.0.0.1:{port}/", timeout=2, max_bytes=100)
    assert refused.value.reason == "connection failed" and "refused" not in refused.value.reason
