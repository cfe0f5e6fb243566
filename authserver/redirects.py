"""Where a sign-in may send the browser afterwards: only URLs on REDIRECT_ALLOWLIST.

An allow-list entry is either an origin (`https://app.example.com`: any path there) or a URL
prefix (`https://app.example.com/callback`: that path and anything below it, on a path-segment
boundary). Custom app schemes work the same way (`myapp://auth`, `com.example.app:/oauth`).

Candidates and entries are both parsed with urllib and compared part by part (scheme, host,
port, path), never as strings: `https://app.example.com.evil.test`,
`https://app.example.com@evil.test`, `//evil.test`, `javascript:…`, backslashes and `..`
segments that climb out of a prefix are all refused. Anything a browser might read differently
from urllib (controls, spaces, non-ASCII, backslashes, user info, fragments) is refused rather
than interpreted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from authserver.config import settings
from authserver.errors import Problem

MAX_REDIRECT_LENGTH = 2048

# Schemes that run code or carry content in the browser: never a place to send a person,
# even if someone put one on the allow-list by mistake.
_DANGEROUS_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    path: str


def _parse(url: str) -> _Target | None:
    """The comparable parts of an absolute URL, or None when it is not safe to interpret."""
    if not isinstance(url, str) or not url or len(url) > MAX_REDIRECT_LENGTH:
        return None
    # Browsers strip tabs/newlines and treat "\" as "/" in http(s) URLs; urllib does not.
    # Refusing these closes every gap between the two readings.
    if not url.isascii() or "\\" in url or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or scheme in _DANGEROUS_SCHEMES or parts.fragment or "#" in url:
        return None
    if "@" in parts.netloc:
        return None
    host = (parts.hostname or "").lower()
    if scheme in _DEFAULT_PORTS:
        if not host:
            return None
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    elif parts.netloc and not host:
        return None
    path = parts.path
    # Servers differ in what they decode before routing; judge the decoded path too.
    decoded = unquote(path)
    if "\\" in decoded or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        return None
    if any(segment in {".", ".."} for segment in decoded.split("/")):
        return None
    return _Target(scheme, host, port, path)


def _path_within(path: str, prefix: str) -> bool:
    if not prefix or prefix == "/":
        return True
    if path == prefix:
        return True
    base = prefix if prefix.endswith("/") else prefix + "/"
    return path.startswith(base)


def is_allowed(url: str, allowlist: Iterable[str]) -> bool:
    """True when `url` is on one of the allow-list's origins or under one of its prefixes."""
    target = _parse(url)
    if target is None:
        return False
    for entry in allowlist:
        allowed = _parse(entry)
        if allowed is None:
            continue
        if (target.scheme, target.host, target.port) != (
            allowed.scheme, allowed.host, allowed.port
        ):
            continue
        if _path_within(target.path, allowed.path):
            return True
    return False


def check_redirect(url: str | None) -> str | None:
    """`url` unchanged when it is allowed (None stays None); else 422 invalid_redirect."""
    if url is None:
        return None
    if not is_allowed(url, settings().redirect_allowlist):
        raise Problem(422, "invalid_redirect",
                      "redirect_to is not one of the addresses this server may send you to.",
                      field="redirect_to")
    return url
