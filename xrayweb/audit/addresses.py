"""The client's address, as the audit records it.

Behind a reverse proxy every request comes from the proxy, and the client's address is in
``X-Forwarded-For``. That header is the client's to write, so it is believed only when the
request came from a proxy the settings trust (``TRUSTED_PROXIES``: addresses or networks), and
only as far as the chain of trusted proxies goes: reading from the right, the first address
that is not a trusted proxy is the client. Without trusted proxies the header is ignored.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def client_ip(request) -> str | None:
    """The address of the client that sent ``request``; None if there is no valid one."""
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    if not _trusted(peer, networks):
        return str(peer) if peer is not None else None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            return str(peer)  # a garbled hop: the last trusted proxy is all we know
        if not _trusted(address, networks):
            return str(address)
        peer = address
    return str(peer)
