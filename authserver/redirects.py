"""Where a sign-in may send the browser afterwards: only URLs on REDIRECT_ALLOWLIST.

An allow-list entry is either an origin (`https://app.example.com`: any path there) or a URL
prefix (`https://app.example.com/callback`: that path and anything below it, on a path-segment
boundary). Custom app schemes work the same way (`myapp://auth`, `com.example.app:/oauth`).

Candidates and entries are both normalised the same way and compared part by part (scheme,
host, port, path), never as strings. The rule is "refuse what a browser, an app's router or a
mobile OS might read differently from us", rather than "interpret it as they would":

- no control characters, whitespace, backslashes or fragments anywhere; no user info;
- the scheme must be written in lower case: Android matches app schemes (and their hosts)
  case-sensitively, so `MYAPP://auth` may open another app than `myapp://auth`;
- an http(s) host is compared lower-cased and IDNA-encoded; a host with non-ASCII letters is
  accepted only if IDNA 2008 encodes it without mapping anything (full-width letters, an
  ideographic full stop, invisible joiners and upper-case non-ASCII letters are refused), so
  a look-alike compares as the different host it is; `%` in a host, a trailing dot, an empty
  label are refused; a missing port and the scheme's default port are the same;
- the path is checked raw and percent-decoded: no `.`/`..` segments (however encoded), no
  empty segments (`//`), no `;` (path parameters, `..;/`), no encoded `/`, `\\`, `.`, `%` or
  `;`, nothing but printable ASCII once decoded; the prefix match is case-sensitive;
- a `redirect_to` whose query already has a `code` or `state` parameter is refused: the
  hand-off adds those, and an app must never be able to read an attacker's instead.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus, unquote_to_bytes

import idna

from authserver.config import settings
from authserver.errors import Problem

MAX_REDIRECT_LENGTH = 2048

#: Query parameters the hand-off puts on redirect_to; a redirect_to may not bring its own.
RESERVED_PARAMS = frozenset({"code", "state"})

# Schemes that run code or carry content in the browser (or launch any app, `intent:`):
# never a place to send a person, even if someone put one on the allow-list by mistake.
_DANGEROUS_SCHEMES = frozenset({
    "javascript", "data", "vbscript", "file", "blob", "about", "filesystem", "view-source",
    "intent", "jar",
})
_DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
# A custom scheme's "host" is an app's route name; compared exactly, so letters of any case.
_APP_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")
# RFC 3986 pchar without ";" (path parameters, "..;/"), plus "/"; "%" is checked apart.
_PATH_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@/%]*\Z")
_QUERY_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*\Z")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Bytes a percent-escape in the path may not stand for: separators a server or router may
# decode before matching, and "%" itself (double encoding).
_FORBIDDEN_DECODED = frozenset(b"/\\.%;")


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    path: str


def _has_invisible(url: str) -> bool:
    """Controls, whitespace and format characters (zero-width, bidi) anywhere."""
    return any(
        ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"}
        for ch in url
    )


def _web_host(raw: str) -> str | None:
    """The comparable (lower-case ASCII, IDNA-encoded) form of an http(s) host, or None."""
    if raw.startswith("["):
        if not raw.endswith("]"):
            return None
        try:
            return "[" + ipaddress.IPv6Address(raw[1:-1]).compressed + "]"
        except ValueError:
            return None
    # Upper-case ASCII letters are the same host to everyone; other letters are judged below.
    host = "".join(ch.lower() if ch.isascii() else ch for ch in raw)
    if not host.isascii():
        # Only letters IDNA 2008 takes as they are: anything it would have to map (full-width,
        # "。", upper case, joiners) is a host that only looks like another one.
        try:
            encoded = idna.encode(host).decode("ascii")
            if idna.decode(encoded) != host:
                return None
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
        host = encoded
    return host if _HOST_RE.match(host) else None


def _split_netloc(netloc: str) -> tuple[str, str | None] | None:
    """(host, port string or None) of an authority without user info, or None."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host, rest = netloc[:end + 1], netloc[end + 1:]
        if not rest:
            return host, None
        return (host, rest[1:]) if rest.startswith(":") else None
    if netloc.count(":") > 1:
        return None
    host, sep, port = netloc.partition(":")
    return host, (port if sep else None)


def _path_ok(path: str) -> bool:
    if not _PATH_CHARS_RE.match(path) or _BAD_ESCAPE_RE.search(path):
        return False
    for match in re.finditer(r"%([0-9A-Fa-f]{2})", path):
        byte = int(match.group(1), 16)
        if byte in _FORBIDDEN_DECODED or byte <= 0x20 or byte >= 0x7F:
            return False
    decoded = unquote_to_bytes(path).decode("ascii")  # printable ASCII, checked above
    segments = decoded.split("/")
    for index, segment in enumerate(segments):
        # ".", ".." and "..." (IIS and some routers climb with those too), however encoded.
        if segment and set(segment) == {"."}:
            return False
        # "//" inside a path: some servers and routers collapse it, others read a host.
        if not segment and 0 < index < len(segments) - 1:
            return False
    return True


def _query_ok(query: str) -> bool:
    if not _QUERY_CHARS_RE.match(query) or _BAD_ESCAPE_RE.search(query):
        return False
    # Frameworks differ on ";" as a separator and on "code[]=" arrays: refuse all readings.
    for pair in re.split(r"[&;]", query):
        name = unquote_plus(pair.partition("=")[0]).strip().lower()
        if name.partition("[")[0] in RESERVED_PARAMS:
            return False
    return True


def _parse(url: str) -> _Target | None:
    """The normalised, comparable parts of an absolute URL, or None when it is not safe."""
    if not isinstance(url, str) or not url or len(url) > MAX_REDIRECT_LENGTH:
        return None
    if _has_invisible(url) or "\\" in url or "#" in url:
        return None
    scheme, colon, rest = url.partition(":")
    if not colon or not _SCHEME_RE.match(scheme) or scheme in _DANGEROUS_SCHEMES:
        return None
    if rest.startswith("//"):
        authority_end = len(rest)
        for sep in "/?":
            found = rest.find(sep, 2)
            if found >= 0:
                authority_end = min(authority_end, found)
        netloc, rest = rest[2:authority_end], rest[authority_end:]
        has_authority = True
    else:
        netloc, has_authority = "", False
    path, _, query = rest.partition("?")
    # Non-ASCII is only ever judged in an http(s) host (IDNA below); anywhere else it is out.
    if not path.isascii() or not query.isascii() or "@" in netloc:
        return None
    if not _path_ok(path) or not _query_ok(query):
        return None
    split = _split_netloc(netloc)
    if split is None:
        return None
    raw_host, raw_port = split
    port: int | None = None
    if raw_port:  # "host:" with an empty port is the default port, as browsers read it
        if not _PORT_RE.match(raw_port) or not 0 < int(raw_port) <= 65535:
            return None
        port = int(raw_port)
    if scheme in _DEFAULT_PORTS:
        host = _web_host(raw_host) if has_authority else None
        if host is None:
            return None
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    else:
        if not raw_host.isascii() or (has_authority and raw_host
                                      and not _APP_HOST_RE.match(raw_host)):
            return None
        if has_authority and not raw_host:
            return None  # "myapp:///x": no app route, and parsers disagree on what it means
        host = raw_host
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
                      "redirect_to is not one of the addresses this server may send you to "
                      "(or it already carries a code or state parameter).",
                      field="redirect_to")
    return url
