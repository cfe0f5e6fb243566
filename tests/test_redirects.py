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
    "https://shop.example.com/callback?app=abc&next=%2Fhome",
    "https://shop.example.com/callback/sub",
    "http://localhost:3000/auth/",
    "http://localhost:3000/auth/done",
    "myapp://auth",
    "myapp://auth/callback?from=1",
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


# The red-team table: every one of these must be refused by the allow-list below, whatever a
# browser, an app router or a mobile OS would make of it.
HARDENING_ALLOWLIST = [
    "https://app.example.test/callback",
    "https://app.example.test:8443/port",
    "myapp://auth",
    "com.example.app:/oauth",
    "https://bücher.example/cb",
]


@pytest.mark.parametrize("url", [
    # dot segments, however spelled
    "https://app.example.test/callback/../admin",
    "https://app.example.test/callback/..",
    "https://app.example.test/callback/%2e%2e/admin",
    "https://app.example.test/callback/%2E%2e/admin",
    "https://app.example.test/callback/.%2e/admin",
    "https://app.example.test/callback/%2e./admin",
    "https://app.example.test/callback/..;/admin",
    "https://app.example.test/callback/.../admin",
    "https://app.example.test/callback/./x",
    "https://app.example.test/callback/%252e%252e/admin",  # double-encoded
    "https://app.example.test/callback/%c0%ae%c0%ae/admin",  # overlong UTF-8 dots
    # path parameters
    "https://app.example.test/callback;jsessionid=1",
    "https://app.example.test/callback/x;y",
    "https://app.example.test/callback%3b/x",
    # encoded slashes and backslashes, raw backslashes
    "https://app.example.test/callback%2f..%2fadmin",
    "https://app.example.test/callback%2F..",
    "https://app.example.test/callback/%5c..%5cadmin",
    "https://app.example.test/callback\\..\\admin",
    "https://app.example.test\\@evil.test/callback",
    "https://app.example.test/callback//evil.test",
    # user info
    "https://app.example.test@evil.test/callback",
    "https://app.example.test:443@evil.test/callback",
    "https://user:pw@app.example.test/callback",
    "https://@app.example.test/callback",
    "https://app.example.test%40evil.test/callback",
    # fragments
    "https://app.example.test/callback#",
    "https://app.example.test/callback#frag",
    "https://evil.test#@app.example.test/callback",
    # control characters and whitespace, raw and encoded
    "https://app.example.test/callback\x00",
    "https://app.example.test/callback%00",
    "https://app.example.test/callback%0d%0aLocation:%20https://evil.test",
    "https://app.example.test/call back",
    "https://app.example.test/callback%20",
    "https://app.exa\tmple.test/callback",
    "https://app.example.test/callback\u200b",
    "https://app.example.test/callback\u202e",
    "\u00a0https://app.example.test/callback",
    # hosts that only look like the allowed one
    "https://\u0430pp.example.test/callback",               # Cyrillic a
    "https://xn--pp-6kc.example.test/callback",             # ...its IDNA form
    "https://\uff41\uff50\uff50.example.test/callback",     # full-width app
    "https://app.example.test\u3002evil.test/callback",     # ideographic full stop
    "https://app.exam\u200bple.test/callback",              # zero-width space
    "https://app%2eexample.test/callback",
    "https://app.example.test./callback",
    "https://app..example.test/callback",
    "https://B\u00dccher.example/cb",                       # upper-case non-ASCII
    "https://app.example.test.evil.test/callback",
    "https://evil-app.example.test/callback",
    # ports that differ
    "https://app.example.test:444/callback",
    "https://app.example.test:8443/callback",
    "https://app.example.test/port",
    "https://app.example.test:08443x/port",
    "https://app.example.test:65536/callback",
    "https://app.example.test:-443/callback",
    # scheme tricks
    "http://app.example.test/callback",
    "HTTPS://app.example.test/callback",
    "hTTps://app.example.test/callback",
    "MYAPP://auth",
    "myApp://auth",
    "https:app.example.test/callback",
    "https:/app.example.test/callback",
    "https:///app.example.test/callback",
    "//app.example.test/callback",
    "///app.example.test/callback",
    "\\\\app.example.test/callback",
    "javascript:alert(document.domain)//https://app.example.test/callback",
    "JavaScript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox",
    "intent://auth#Intent;scheme=myapp;end",
    # custom schemes: same rules
    "myapp://auth/../x",
    "myapp://Auth",
    "myapp://auth@evil",
    "myapp:///auth",
    "myapp:auth",
    "com.example.app:/oauth/%2e%2e/x",
    # a redirect_to may not bring its own code or state
    "https://app.example.test/callback?code=attacker",
    "https://app.example.test/callback?state=attacker",
    "https://app.example.test/callback?x=1&STATE=attacker",
    "https://app.example.test/callback?x=1;code=attacker",
    "https://app.example.test/callback?%63ode=attacker",
    "https://app.example.test/callback?code[]=attacker",
    "myapp://auth?code=attacker",
])
def test_hostile_redirects_are_refused(url):
    assert not is_allowed(url, HARDENING_ALLOWLIST)


@pytest.mark.parametrize("url", [
    "https://app.example.test/callback",
    "https://app.example.test/callback/",
    "https://app.example.test/callback/done?from=web&x=%2F",
    "https://APP.example.TEST/callback",                    # host case is not a trick
    "https://app.example.test:443/callback",                # the default port
    "https://app.example.test:/callback",                   # an empty port is the default
    "https://app.example.test:8443/port/x",
    "myapp://auth",
    "myapp://auth/done?x=1",
    "com.example.app:/oauth",
    "com.example.app:/oauth/redirect",
    "https://bücher.example/cb",                            # an IDN host, as listed
    "https://xn--bcher-kva.example/cb",                     # ...and its IDNA form
    "https://app.example.test/callback/file.json",
])
def test_hardened_allow_list_still_allows(url):
    assert is_allowed(url, HARDENING_ALLOWLIST)


def test_check_redirect_refuses_a_redirect_carrying_code_or_state(app):
    configure(app, REDIRECT_ALLOWLIST=["https://app.example.test/callback"])
    for url in ("https://app.example.test/callback?code=x",
                "https://app.example.test/callback?state=x"):
        with pytest.raises(Problem) as caught:
            check_redirect(url)
        assert (caught.value.status, caught.value.code) == (422, "invalid_redirect")
