"""Who may use the explorer: open on loopback, an access token everywhere else.

A server bound to a loopback address (127.0.0.0/8, ::1, ``localhost``) answers anyone on this machine, as
before. Bound anywhere else it requires a random token (``secrets.token_urlsafe``): the first request carries
it as ``?token=...``; a valid one sets an HttpOnly, SameSite=Strict cookie, so the page's own requests
(app.js, app.css, the JSON endpoints) need not repeat it. Tokens are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote_plus

from ..exceptions import RnnlensError

TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def is_loopback(host: str) -> bool:
    """True for a host that only this machine can reach: ``localhost``, 127.0.0.0/8, ``::1`` (``[::1]``).
    Anything else (``0.0.0.0``, ``''``, ``::``, a LAN address, another name) is not."""
    h = host.strip().lower()
    if h == "localhost":
        return True
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    """``token`` when it is 16..128 URL-safe characters (letters, digits, ``-``, ``_``), else RnnlensError."""
    if not _TOKEN.fullmatch(token):
        raise RnnlensError("--token must be 16..128 characters of letters, digits, '-' and '_' "
                           "(or leave it out for a random one)")
    return token


@dataclass(frozen=True)
class Access:
    """The server's access rule: ``token`` None means open (loopback); else every request needs it."""

    token: str | None = None
    cookie_name: str = "rnnlens_token"

    @classmethod
    def for_host(cls, host: str, port: int, required: bool | None = None, token: str | None = None) -> Access:
        """The rule for a server on host:port. ``required`` None: a token is needed unless the host is
        loopback; an explicit ``token`` (checked by check_token) is used instead of a random one."""
        if required is None:
            required = not is_loopback(host) or token is not None
        if not required:
            return cls()
        # cookies are not scoped by port: one name per port keeps two explorers on one host apart
        return cls(check_token(token) if token is not None else secrets.token_urlsafe(TOKEN_BYTES),
                   f"rnnlens_token_{port}")

    def split_query(self, query: str) -> tuple[str | None, str]:
        """(the ``token`` parameter's value or None, the query without it). Repeated tokens give ''."""
        if self.token is None or not query:
            return None, query
        found, kept = [], []
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "token":
                found.append(value)
            else:
                kept.append(part)
        if not found:
            return None, query
        return (unquote_plus(found[0]) if len(found) == 1 else ""), "&".join(kept)

    def matches(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the token (constant time); always True when the server is open."""
        if self.token is None:
            return True
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode("utf-8"), self.token.encode("utf-8"))

    def cookie_token(self, headers: list[str]) -> str | None:
        """The token from the request's Cookie header(s), None when absent or malformed."""
        for header in headers:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            if self.cookie_name in jar:
                return jar[self.cookie_name].value
        return None

    def set_cookie(self) -> str:
        """The Set-Cookie header value that lets the browser repeat the token on the page's own requests."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
