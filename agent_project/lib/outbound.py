"""The one guarded client for every destination a tenant (or a tenant's operator) can set:
the tenant webhook (follow-ups, handoff events), tenant HTTP tools, the courier API, and
whatever later features add (attachment URLs, event subscriptions). A tenant must not be
able to make this service call its own internals, the cloud metadata service or the
private network it runs in, nor read back what they answered. The rules:

- only ``http``/``https``, and never a URL with a user name or password in it (httpx
  would send them as ``Authorization: Basic``);
- the host is resolved here and *every* address checked: loopback, private, link-local
  (169.254.169.254), carrier-grade NAT, multicast, reserved and unspecified addresses (and
  their IPv4-mapped, 6to4 and NAT64 forms) are refused, and so are the metadata services'
  names, unless the installation allows that destination (``OUTBOUND_ALLOWED_PRIVATE_HOSTS``,
  ``OUTBOUND_ALLOW_PRIVATE``) or the caller does (a tool an operator marked private);
- the connection goes to the address that was checked (the Host header and TLS SNI keep the
  name), so a DNS answer that changes between the check and the connect cannot slip through;
- no redirect to another origin; same-origin redirects at most ``max_redirects``, each
  re-checked;
- one deadline for the whole call, and a cap on the answer's size, read in chunks.

``url_check`` is what a settings form or serializer calls when a URL is set (the API answers
``422 url_not_allowed`` naming the rule); ``fetch`` checks again at every send, since DNS
can change. What a tenant may read back about a failure is ``OutboundError.reason`` or
``status_reason``: fixed phrases, never the body of what answered nor a socket error's
text (they told a tenant what an internal service said and which ports were open).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

from agent_project.lib import http

MAX_REDIRECTS = 3
# Names that lead to a cloud metadata service whatever a resolver answers for them.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# What a tenant reads back about a failed delivery.
REFUSED_PRIVATE = "refused: private address"
REFUSED_URL = "refused: url not allowed"
REFUSED_REDIRECT = "refused: redirect to another host"
TIMEOUT = "timeout"
CONNECTION_FAILED = "connection failed"
TOO_LARGE = "response too large"


class OutboundError(Exception):
    """A call refused or failed. ``code`` is stable (``address_refused``, ``url_refused``,
    ``redirect_refused``, ``timeout``, ``unreachable``, ``too_large``); ``reason`` is the
    fixed phrase a tenant may read; ``rule`` names the rule a refused URL broke; ``message``
    is for the operator's log and the set-time answer (it never quotes a remote answer)."""

    def __init__(self, code: str, reason: str, message: str, *, rule: str = ""):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.rule = rule
        self.message = message


@dataclass
class Fetched:
    status: int
    body: bytes
    headers: httpx.Headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def status_reason(status: int) -> str:
    """``http 4xx``: the class of an answer's status, all a tenant reads of a failed one."""
    return f"http {status // 100}xx"


def address_refusal(ip: Address) -> str:
    """Why this address may not be reached by default ("" when it may)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            ip = embedded
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


class SystemResolver:
    """``getaddrinfo``; tests put a fake DNS here (``resolver``), as they fake other outside services."""

    def __call__(self, host: str, port: int) -> list[str]:
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


resolver = SystemResolver()


def resolve(host: str, port: int) -> list[Address]:
    """Every address of ``host`` (an address literal is its own); raises ``OutboundError``."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = resolver(host, port)
    except (OSError, UnicodeError):
        raise OutboundError("unreachable", CONNECTION_FAILED, f"the host {host} could not be resolved") from None
    addresses: list[Address] = []
    for text in found:
        ip = ipaddress.ip_address(text.split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OutboundError("unreachable", CONNECTION_FAILED, f"the host {host} has no address")
    return addresses


def _allow_entries() -> list[tuple[str, int | None]]:
    entries = []
    for entry in settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.startswith("["):  # [::1] or [::1]:9000
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            host, _, port = entry.partition(":")
        else:  # a name, an IPv4 address or a bare IPv6 address
            host, port = entry, ""
        entries.append((host, int(port) if port.isdigit() else None))
    return entries


def installation_allows(host: str, port: int, ip: Address | None = None) -> bool:
    """Is this private destination one the installation opened (by name or address, with
    or without a port)?"""
    if settings.OUTBOUND_ALLOW_PRIVATE:
        return True
    names = {host.lower().strip("[]")} | ({str(ip)} if ip is not None else set())
    return any(name in names and (allowed_port is None or allowed_port == port)
               for name, allowed_port in _allow_entries())


def _refused(rule: str, message: str, code: str = "url_refused", reason: str = REFUSED_URL) -> OutboundError:
    return OutboundError(code, reason, message, rule=rule)


def _parts(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _refused("scheme", "only http:// and https:// URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refused("credentials", "URLs with a user name or password are not allowed")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise _refused("host", "the URL needs a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("port", "the URL's port is not a number between 0 and 65535") from None
    return parts, host, port


def checked_addresses(url: str, *, allow_private: bool = False, resolve_names: bool = True):
    """``(parts, host, port, addresses)`` of a URL that may be called, else ``OutboundError``.
    With ``resolve_names`` off, a name that does not resolve (yet) passes: that is the
    set-time check, and the send-time one resolves again."""
    parts, host, port = _parts(url)
    permitted = allow_private or installation_allows(host, port)
    if not permitted and (host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost")):
        raise _refused("private address", f"{host} is an internal name; such destinations are not allowed",
                       "address_refused", REFUSED_PRIVATE)
    try:
        addresses = resolve(host, port)
    except OutboundError:
        if resolve_names:
            raise
        return parts, host, port, []
    if not permitted:
        for ip in addresses:
            reason = address_refusal(ip)
            if reason and not installation_allows(host, port, ip):
                literal = host.strip("[]") == str(ip)
                raise _refused("private address",
                               f"{host} is a {reason} address" if literal else
                               f"{host} resolves to a {reason} address ({ip})",
                               "address_refused", REFUSED_PRIVATE)
    return parts, host, port, addresses


def url_check(url: str, *, allow_private: bool = False) -> None:
    """Refuse, when it is set, a URL ``fetch`` would refuse: raises ``OutboundError``
    whose ``rule`` is ``scheme``, ``credentials``, ``host``, ``port`` or ``private address``."""
    checked_addresses(url, allow_private=allow_private, resolve_names=False)


def _same_origin(a, b) -> bool:
    return (a.scheme, (a.hostname or "").lower(), a.port) == (b.scheme, (b.hostname or "").lower(), b.port)


def fetch(*, method: str, url: str, timeout: float, max_bytes: int, headers: dict | None = None,
          json_body=None, content: bytes | None = None, allowed_host: str | None = None,
          allow_private: bool = False, max_redirects: int = MAX_REDIRECTS, read_body: bool = True) -> Fetched:
    """Call ``url`` under every rule above. ``allowed_host`` pins the host (a tool's URL
    template fixes it; its arguments must not change it). With ``read_body`` off only the
    status and headers are kept (a webhook's answer is not read). Raises ``OutboundError``."""
    deadline = time.monotonic() + timeout
    first = urlsplit(url)
    for _ in range(max_redirects + 1):
        parts, host, port, addresses = checked_addresses(url, allow_private=allow_private)
        if allowed_host is not None and host != allowed_host.lower():
            raise _refused("host", f"only the configured host {allowed_host} may be called")
        ip = addresses[0]
        ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
        default_port = port == (443 if parts.scheme == "https" else 80)
        pinned = urlunsplit((parts.scheme, ip_host if default_port else f"{ip_host}:{port}", parts.path or "/",
                             parts.query, ""))
        request_headers = {**(headers or {}), "Host": host if default_port else f"{host}:{port}"}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError("timeout", TIMEOUT, "no answer in time")
        try:
            # A client per call: pooled connections are keyed by address, and another host on
            # the same address must not reuse a TLS session made for this one's name.
            with http.client(timeout=remaining) as client:
                request = client.build_request(method, pinned, headers=request_headers, json=json_body,
                                               content=content, extensions=extensions)
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect and max_redirects:
                        target = urljoin(url, response.headers.get("Location", ""))
                        if not _same_origin(urlsplit(target), first):
                            raise OutboundError("redirect_refused", REFUSED_REDIRECT,
                                                f"{host} redirected to another host")
                        url = target
                        continue
                    body = _read(response, max_bytes, deadline) if read_body else b""
                    return Fetched(response.status_code, body, response.headers)
                finally:
                    response.close()
        except httpx.TimeoutException:
            raise OutboundError("timeout", TIMEOUT, f"{host} did not answer in time") from None
        except httpx.TransportError as exc:
            raise OutboundError("unreachable", CONNECTION_FAILED,
                                f"{host} could not be reached ({exc.__class__.__name__})") from None
    raise OutboundError("redirect_refused", REFUSED_REDIRECT, "too many redirects")


def _read(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OutboundError("too_large", TOO_LARGE, f"the answer is {declared} bytes; the limit is {max_bytes}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise OutboundError("too_large", TOO_LARGE, f"the answer is over the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise OutboundError("timeout", TIMEOUT, "no answer in time")
    return bytes(body)
