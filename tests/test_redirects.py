"""The redirect_to allow-list: exact origins and URL prefixes, compared part by part."""

from __future__ import annotations

import pytest

from authserver.errors import Problem
from authserver.redirects import check_redirect, is_allowed
from authserver.services import configure

ALLOWLIST = [
    "https://app.example.com",            # an origin: any path there
    "https://shop.example.com/callback",  # a prefix: /callback and below
    "http://localhost:3000/auth/",        # a prefix with a trailing slash
    "myapp://auth",                       # a custom app scheme
    "com.example.app:/oauth",             # a private-use scheme without a host (RFC 8252)
]


@pytest.mark.parametrize("url", [
    "https://app.example.com",
    "https://app.example.com/",
    "https://app.example.com/anything/at/all?x=1",
    "https://APP.Example.COM/done",
    "https://app.example.com:443/done",
    "https://shop.example.com/callback",
    "https://shop.example.com/callback?state=abc",
    "https://shop.example.com/callback/sub",
    "http://localhost:3000/auth/",
    "http://localhost:3000/auth/done",
    "myapp://auth",
    "myapp://auth/callback?state=1",
    "MYAPP://auth",
    "com.example.app:/oauth",
    "com.example.app:/oauth/redirect",
])
def test_allowed(url):
    assert is_allowed(url, ALLOWLIST)


@pytest.mark.parametrize("url", [
    # look-alike hosts and user info
    "https://app.example.com.evil.test/",
    "https://app.example.com.evil.test",
    "https://evil.test/app.example.com",
    "https://app.example.com@evil.test/",
    "https://user:pass@app.example.com/",
    "https://evil.test?https://app.example.com",
    "https://evilapp.example.com/",
    "https://app.example.co/",
    # scheme tricks
    "//evil.test",
    "//app.example.com/",
    "/account",
    "app.example.com/done",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)//https://app.example.com",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "http://app.example.com/",          # origin is https only
    "https:app.example.com",
    "https:///app.example.com",
    "https://app.example.com:8443/",    # another port is another origin
    # backslashes and whitespace that browsers rewrite
    "https://app.example.com\\@evil.test/",
    "https:\\\\evil.test",
    "https://app.example.com\\.evil.test",
    "https://app.example.com/\t/evil.test",
    " https://app.example.com/",
    "https://app.example.com/\n",
    "https://app.example.com/%0d%0aSet-Cookie:x",
    "https://\u0430pp.example.com/",       # Cyrillic a
    # path prefixes: segment boundary and traversal
    "https://shop.example.com/callbackevil",
    "https://shop.example.com/callback-evil",
    "https://shop.example.com/",
    "https://shop.example.com/other",
    "https://shop.example.com/callback/../admin",
    "https://shop.example.com/callback/%2e%2e/admin",
    "https://shop.example.com/callback/%2E%2E%2Fadmin",
    "https://shop.example.com/callback%2F..%2Fadmin",
    "https://shop.example.com/callback/./x",
    "http://localhost:3000/auth",        # the prefix is /auth/ (trailing slash)
    "http://localhost:3000/authx",
    # custom schemes
    "myapp://auth.evil",
    "myapp://evil/auth",
    "otherapp://auth",
    "com.example.app:/oauthevil",
    "com.example.app://evil/oauth",
    # fragments, bad ports, junk
    "https://app.example.com/#frag",
    "https://app.example.com:99999/",
    "https://app.example.com:abc/",
    "",
    "https://app.example.com/" + "a" * 2100,
])
def test_refused(url):
    assert not is_allowed(url, ALLOWLIST)


def test_an_empty_allow_list_refuses_everything():
    assert not is_allowed("https://app.example.com/", [])


def test_dangerous_schemes_are_refused_even_when_listed():
    assert not is_allowed("javascript:alert(1)", ["javascript:alert(1)"])


def test_check_redirect_answers_422_invalid_redirect(app):
    configure(app, REDIRECT_ALLOWLIST=ALLOWLIST)
    assert check_redirect(None) is None
    assert check_redirect("myapp://auth/x") == "myapp://auth/x"
    with pytest.raises(Problem) as caught:
        check_redirect("https://app.example.com.evil.test/")
    assert caught.value.status == 422
    assert caught.value.code == "invalid_redirect"
    assert caught.value.field == "redirect_to"


@pytest.mark.parametrize("url", [
    "https://shop.example.com/callback/%5C..%5Cadmin",
    "https://shop.example.com/callback/..%5Cadmin",
    "https://shop.example.com/callback/%00",
])
def test_encoded_backslashes_and_controls_are_refused(url):
    assert not is_allowed(url, ALLOWLIST)
