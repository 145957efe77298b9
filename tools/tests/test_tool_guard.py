"""The outbound guard as tenant tools meet it (agent_project.lib.outbound, with the tools'
failure codes): only the configured host, no internal addresses unless the tool allows
them, no redirects elsewhere, a size cap and a timeout.
The fake shop listens on 127.0.0.1, so the tests that need it pass ``allow_private``;
the refusals are proven with it off (and the fake then receives nothing)."""

from __future__ import annotations

import ipaddress

import pytest

from tools.base import ToolFailure
from agent_project.lib.outbound import address_refusal
from tools.http_tools import http_tool_call, render_url, template_host
from tools.http_tools import tool_fetch as fetch
from tools.tests.fakes import Answer, shop_order


@pytest.mark.parametrize("address, refused", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local (cloud metadata)"), ("169.254.1.1", "link-local (cloud metadata)"),
    ("fe80::1", "link-local (cloud metadata)"),
    ("10.0.0.5", "private or reserved"), ("172.16.3.4", "private or reserved"), ("192.168.1.1", "private or reserved"),
    ("100.64.0.1", "private or reserved"), ("fd00::1", "private or reserved"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
    ("8.8.8.8", ""), ("203.194.112.1", ""), ("2001:4860:4860::8888", ""),
])
def test_address_refusal(address, refused):
    assert address_refusal(ipaddress.ip_address(address)) == refused


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/api/orders/1",
    "http://localhost:{port}/api/orders/1",  # a name that resolves to loopback
    "http://[::ffff:127.0.0.1]:{port}/api/orders/1",
])
def test_loopback_is_refused_unless_allowed(shop_api, url):
    url = url.format(port=shop_api.port)
    host = template_host(url)
    with pytest.raises(ToolFailure) as refused:
        fetch(method="GET", url=url, allowed_host=host, timeout=2, max_bytes=1000)
    assert refused.value.code == "tool_address_refused"
    assert shop_api.requests == []


def test_loopback_is_reached_when_the_tool_allows_private_network(shop_api):
    shop_api.play(Answer(body=shop_order()))
    url = f"http://127.0.0.1:{shop_api.port}/api/orders/1"
    fetched = fetch(method="GET", url=url, allowed_host="127.0.0.1", timeout=2, max_bytes=10_000,
                    allow_private=True)
    assert fetched.status == 200 and b"INV-1001" in fetched.body
    assert shop_api.requests[0].headers["Host"] == f"127.0.0.1:{shop_api.port}"


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.5/internal", "http://192.168.1.1/admin", "http://172.16.0.1/", "http://[fd00::1]/",
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud's metadata service (CGNAT range)
])
def test_metadata_and_private_ranges_are_refused_before_connecting(url):
    # refused on the address alone: nothing is sent, so no test touches the network
    with pytest.raises(ToolFailure) as refused:
        fetch(method="GET", url=url, allowed_host=template_host(url), timeout=2, max_bytes=1000)
    assert refused.value.code == "tool_address_refused"


def test_only_the_configured_host_is_reached(shop_api):
    with pytest.raises(ToolFailure) as refused:
        fetch(method="GET", url=f"http://127.0.0.1:{shop_api.port}/x", allowed_host="shop.example.com", timeout=2,
              max_bytes=1000, allow_private=True)
    assert refused.value.code == "tool_host_refused"
    with pytest.raises(ToolFailure) as scheme:
        fetch(method="GET", url="file:///etc/passwd", allowed_host="", timeout=2, max_bytes=1000)
    assert scheme.value.code == "tool_url_refused"
    assert shop_api.requests == []


def test_an_argument_cannot_change_the_host_or_path():
    url, rest = render_url("https://shop.example.com/api/orders/{order_id}",
                           {"order_id": "1@169.254.169.254/../../admin?x=1#", "extra": "y"})
    assert url == "https://shop.example.com/api/orders/1%40169.254.169.254%2F..%2F..%2Fadmin%3Fx%3D1%23"
    assert rest == {"extra": "y"}


@pytest.mark.parametrize("template, error", [
    ("https://{host}/api", "never in the host"),
    ("https://shop.example.com{path}", "never in the host"),
    ("https://user@shop.example.com/api", "never in the host"),
    ("ftp://shop.example.com/x", "http:// or https://"),
    ("https:///nohost", "needs a host"),
    ("https://shop.example.com/{order.id}", "plain name"),
])
def test_url_templates_must_fix_the_host(template, error):
    with pytest.raises(ValueError, match=error):
        template_host(template)


def test_redirect_to_another_host_is_refused(shop_api):
    shop_api.play(Answer(302, {}, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(ToolFailure) as refused:
        fetch(method="GET", url=f"http://127.0.0.1:{shop_api.port}/go", allowed_host="127.0.0.1", timeout=2,
              max_bytes=1000, allow_private=True)
    assert refused.value.code == "tool_host_refused"
    assert len(shop_api.requests) == 1


def test_redirect_on_the_same_host_is_followed(shop_api):
    shop_api.play(Answer(301, {}, headers={"Location": "/api/v2/orders/1"}), Answer(body=shop_order()))
    fetched = fetch(method="GET", url=f"http://127.0.0.1:{shop_api.port}/api/orders/1", allowed_host="127.0.0.1",
                    timeout=2, max_bytes=10_000, allow_private=True)
    assert fetched.status == 200 and [r.path for r in shop_api.requests] == ["/api/orders/1", "/api/v2/orders/1"]


def test_post_tool_sends_unused_arguments_as_json_and_maps_the_answer(shop_api):
    shop_api.play(Answer(body=shop_order("INV-7", "SELESAI")))
    result = http_tool_call(method="POST", url_template=shop_api.url + "/api/orders/{order_id}/status",
                            headers={"X-Shop-Key": "k"}, mapping={"status": "data.status", "sku": "data.items.0.sku",
                                                                  "missing": "data.nope.x"},
                            arguments={"order_id": "INV-7", "phone": "0812"}, timeout=2, max_bytes=10_000,
                            allow_private=True)
    assert result == {"status": "SELESAI", "sku": "MWR-12", "missing": None}
    seen = shop_api.requests[0]
    assert (seen.method, seen.path, seen.body) == ("POST", "/api/orders/INV-7/status", {"phone": "0812"})
    assert seen.headers["X-Shop-Key"] == "k"
