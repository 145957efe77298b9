"""A fake DNS for tests: the outbound client's resolver (``agent_project.lib.outbound.resolver``)
answers from this table, so no test sends a DNS query off the machine. A name not in it
fails the way an unknown name does (``socket.gaierror``, "Name or service not known").

    fake_dns.add("hooks.shop.test", "93.184.215.14")   # a public address
    fake_dns.add("rebind.shop.test", "127.0.0.1")      # a name resolving to loopback
"""

from __future__ import annotations

import socket
import threading


class FakeDNS:
    def __init__(self):
        self.lock = threading.Lock()
        self.names: dict[str, list[str]] = {"localhost": ["127.0.0.1", "::1"]}
        self.queries: list[str] = []

    def add(self, name: str, *addresses: str) -> None:
        """Answer ``name`` with these addresses from now on (replacing what it had: DNS changed)."""
        with self.lock:
            self.names[name.lower().rstrip(".")] = list(addresses)

    def __call__(self, host: str, port: int) -> list[str]:
        name = host.lower().rstrip(".")
        with self.lock:
            self.queries.append(name)
            found = self.names.get(name)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(found)
