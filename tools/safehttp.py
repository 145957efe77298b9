"""Outbound HTTP for tenant-defined tools, where the URL's arguments come from a model
that a customer can talk into anything. The rules:

- only ``http``/``https``, and only the host the operator configured in the URL template
  (placeholders may fill the path and query, never the host);
- the host is resolved here and *every* address checked: loopback, private, link-local
  (169.254.169.254, the cloud metadata service), carrier-grade NAT, multicast, reserved
  and unspecified addresses are refused unless the tool explicitly allows private network;
- the connection goes to the address that was checked (the Host header and TLS SNI keep
  the name), so a DNS answer that changes between check and connect cannot slip through;
- no redirect to another host (same-host redirects are followed, at most 3, re-checked);
- a timeout for the whole call and a cap on the response size, read in chunks.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from agent_project.lib import http
from tools.base import ToolFailure

MAX_REDIRECTS = 3


@dataclass
class Fetched:
    status: int
    body: bytes
    content_type: str


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why this address may not be reached from a tenant tool ("" when it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or not ip.is_global:
        return "private or reserved"
    return ""


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ToolFailure("tool_unreachable", f"the host {host} could not be resolved") from None
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ToolFailure("tool_unreachable", f"the host {host} has no address")
    return addresses


def checked_address(url: str, *, allowed_host: str, allow_private: bool):
    """The address to connect to for ``url``, after every check above."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolFailure("tool_url_refused", "only http and https URLs can be called")
    host = (parts.hostname or "").lower()
    if not host or host != allowed_host.lower() or parts.username or parts.password:
        raise ToolFailure("tool_host_refused", f"only the configured host {allowed_host} may be called")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not allow_private:
        for ip in addresses:
            reason = address_refusal(ip)
            if reason:
                raise ToolFailure("tool_address_refused",
                                  f"{host} resolves to a {reason} address ({ip}); such addresses are refused "
                                  "unless the tool allows private network")
    return parts, host, port, addresses[0]


def fetch(*, method: str, url: str, allowed_host: str, headers: dict | None = None, json_body=None,
          timeout: float, max_bytes: int, allow_private: bool = False) -> Fetched:
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts, host, port, ip = checked_address(url, allowed_host=allowed_host, allow_private=allow_private)
        ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
        default_port = port == (443 if parts.scheme == "https" else 80)
        pinned = urlunsplit((parts.scheme, ip_host if default_port else f"{ip_host}:{port}", parts.path or "/",
                             parts.query, ""))
        request_headers = {**(headers or {}), "Host": host if default_port else f"{host}:{port}"}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ToolFailure("tool_timeout", "the tool did not answer in time")
        try:
            with http.client(timeout=remaining) as client:
                request = client.build_request(method, pinned, headers=request_headers, json=json_body,
                                               extensions=extensions)
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        location = response.headers.get("Location", "")
                        url = urljoin(url, location)
                        continue
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise ToolFailure("tool_response_too_large",
                                          f"the answer is {declared} bytes; the limit is {max_bytes}")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise ToolFailure("tool_response_too_large",
                                              f"the answer is over the limit of {max_bytes} bytes")
                        if time.monotonic() > deadline:
                            raise ToolFailure("tool_timeout", "the tool did not answer in time")
                    return Fetched(response.status_code, bytes(body), response.headers.get("Content-Type", ""))
                finally:
                    response.close()
        except httpx.TimeoutException:
            raise ToolFailure("tool_timeout", "the tool did not answer in time") from None
        except httpx.TransportError as exc:
            raise ToolFailure("tool_unreachable", f"the tool's server could not be reached ({exc.__class__.__name__})") from None
    raise ToolFailure("tool_redirect_refused", "too many redirects")
