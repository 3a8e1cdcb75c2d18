"""Egress: what a sandboxed task may reach through agentd's proxy (``proxy.Proxy`` enforces it).

- ``allowlist``: the hosts of a task (``{network: [pypi.org]}``, else the config's ``network:``) and of
  what a person approved; None is the whole network.
- ``allowed``: a listed name or a subdomain of one (``pypi.org`` allows ``files.pypi.org``, not
  ``evilpypi.org``); an IP literal only when listed exactly.  ``port_allowed``: a name on ports 80 and 443
  only (the allowlist names no ports); an IP listed exactly, on any.
- ``resolve``: the one address to connect to, resolved once; every address must be ``public`` (not
  loopback, private, link-local such as the cloud metadata address, multicast, reserved, unspecified,
  nor an IPv4-mapped or 6to4 address of one) unless listed exactly.
- ``endpoint``: the provider path's inference endpoints per CLI (``ENDPOINTS``; the table is in
  ``proxy``'s docstring and docs/security.md), with no dot segment, ``//``, backslash or encoded dot,
  slash or backslash.
"""

from __future__ import annotations

import ipaddress
import re
import socket


PORTS = (80, 443)
_ID = r"/[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}"  # a model id: one segment, never "." or ".."
ENDPOINTS = {
    "claude-cli": (("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models"),
                   ("GET", "/v1/models" + _ID)),
    "codex-cli": (("POST", "/responses"), ("GET", "/models")),
}
_UNSAFE = re.compile(r"(^|/)\.\.?(/|$)|//|\\|%(2e|2f|5c)", re.IGNORECASE)


class Refused(Exception):
    """A request the proxy won't send on: the message says why (after the request, in the log)."""


def allowlist(cfg, attrs: dict | None = None, granted=False) -> tuple[str, ...] | None:
    """The hosts a task's tools may reach through the proxy, or None for the whole network: the task's
    ``{network: ...}`` (else the config's ``network:``) widened by what a person approved (``granted``,
    from ``approvals.grants``: True, a list of hosts, or False).  ``true`` anywhere is the whole network;
    ``false``, no list and no grant: ``()``, nothing but (for a CLI agent) its provider."""
    net = (attrs or {}).get("network")
    net = cfg.values.get("network", False) if net is None else net
    if net is True or granted is True:
        return None
    hosts = [*(net if isinstance(net, list) else ()), *(granted if isinstance(granted, list) else ())]
    return tuple(dict.fromkeys(h.lower().rstrip(".") for h in hosts))


def allowed(host: str, allow: tuple[str, ...]) -> bool:
    """Is ``host`` on the allowlist: a listed name or a subdomain of one; an IP literal only exactly."""
    host = host.lower().rstrip(".")
    for a in allow:
        a = a.lower().rstrip(".")
        if host == a or (not _is_ip(a) and host.endswith("." + a)):
            return True
    return False


def _is_ip(h: str) -> bool:
    return _ip(h) is not None


def _ip(h: str):
    try:
        a = ipaddress.ip_address(h.strip("[]"))
    except ValueError:
        return None
    return getattr(a, "ipv4_mapped", None) or a


def endpoint(cli: str | None, method: str, target: str) -> bool:
    """Is ``method target`` (origin form, relative to the API base) one of ``cli``'s inference endpoints
    (``ENDPOINTS``), with no ``..``, ``//``, backslash or percent-encoded dot or slash in its path."""
    path = target.split("?", 1)[0]
    if not path.startswith("/") or _UNSAFE.search(path):
        return False
    return any(method == m and re.fullmatch(p, path) for m, p in ENDPOINTS.get(cli or "", ()))


def public(addr) -> bool:
    """Is an address (str or ipaddress) one on the internet: not loopback, private, link-local (the cloud
    metadata address), multicast, reserved or unspecified; an IPv4-mapped or 6to4 IPv6 address as its IPv4."""
    a = _ip(str(addr).split("%")[0])
    if getattr(a, "sixtofour", None) is not None:  # 2002:a9fe:a9fe::1 carries 169.254.169.254
        return public(a.sixtofour)
    return a is not None and a.is_global and not (a.is_loopback or a.is_private or a.is_link_local or
                                                 a.is_multicast or a.is_reserved or a.is_unspecified)


def port_allowed(host: str, port: int, allow: tuple[str, ...]) -> bool:
    """A name is reached on 80 and 443 only (the allowlist names no ports); an IP listed exactly, on any."""
    return port in PORTS or (_is_ip(host) and allowed(host, allow))


def resolve(host: str, port: int, allow: tuple[str, ...]) -> str:
    """The one address to connect to for an allowed ``host``: resolved once, every address global or
    listed exactly, else ``Refused``.  Connecting to it (not to the name again) leaves no second lookup
    that could answer differently."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise Refused(f"can't resolve it: {e}") from None
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    listed = {_ip(a) for a in allow} - {None}
    for a in addrs:
        if not public(a) and _ip(a.split("%")[0]) not in listed:
            raise Refused(f"it resolves to {a}, not a public address")
    if not addrs:
        raise Refused("it resolves to no address")
    return addrs[0]
