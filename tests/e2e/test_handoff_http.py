"""The red team's hand-off reproductions, over real HTTP: gunicorn (2 workers) + MySQL.

PKCE downgrade at /token/exchange, login CSRF into an app through a pending hand-off, `state`
carried to the app, and hostile redirect_to values — each must fail against a real server.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

PASSWORD = "correct horse battery staple"
CALLBACK = "https://app.example.test/callback"
FORM_RE = re.compile(r'<form method="post" action="([^"]+)"')
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _sign_in(browser: requests.Session, base: str, query: dict[str, str] | None = None
             ) -> requests.Response:
    """Open /login (with an app's query, if any) and use its password form."""
    page = browser.get(base + "/login", params=query, timeout=10)
    assert page.status_code == 200, page.text[:300]
    [action] = [a for a in map(unescape, FORM_RE.findall(page.text))
                if urlsplit(a).path == "/login"]
    csrf = CSRF_RE.search(page.text)
    assert csrf
    return browser.post(base + action, data={"email": "ada@example.com", "password": PASSWORD,
                                             "csrf_token": csrf.group(1)},
                        allow_redirects=False, timeout=10)


def _callback_query(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text[:300]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return parse_qs(location.query)


@pytest.fixture
def server(live_server):
    server = live_server(REDIRECT_ALLOWLIST=CALLBACK)
    signed_up = requests.post(server.url + "/api/v1/signup",
                              json={"email": "ada@example.com", "password": PASSWORD},
                              timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    return server


def test_handoff_reproductions_fail_over_http(server):
    base, api = server.url, server.url + "/api/v1/token/exchange"

    # PKCE downgrade: a code minted without a challenge, presented with a verifier.
    code = _callback_query(_sign_in(requests.Session(), base, {"redirect_to": CALLBACK}))
    downgraded = requests.post(api, json={"code": code["code"][0], "code_verifier": "v" * 50},
                               timeout=10)
    assert downgraded.status_code == 401 and downgraded.json()["code"] == "invalid_grant"
    burnt = requests.post(api, json={"code": code["code"][0]}, timeout=10)
    assert burnt.status_code == 401  # refused, and the code is gone

    # Login CSRF into the app: an app sign-in pushed into the browser, then a normal sign-in.
    browser = requests.Session()
    pushed = browser.get(base + "/login", params={"redirect_to": CALLBACK, "state": "evil"},
                         timeout=10)
    assert pushed.status_code == 200
    later = _sign_in(browser, base)
    assert later.status_code == 303 and urlsplit(later.headers["Location"]).path == "/account"

    # The app's own sign-in gets its state back, next to a code that exchanges once.
    params = _callback_query(_sign_in(requests.Session(), base,
                                      {"redirect_to": CALLBACK, "state": "app-nonce-1"}))
    assert params["state"] == ["app-nonce-1"]
    assert requests.post(api, json={"code": params["code"][0]}, timeout=10).status_code == 200


HOSTILE = [
    CALLBACK + "/../admin",
    CALLBACK + "/%2e%2e/admin",
    CALLBACK + "/..;/admin",
    CALLBACK + "%2f..%2fadmin",
    "https://app.example.test@evil.test/callback",
    "https://\u0430pp.example.test/callback",
    "https://app.example.test:444/callback",
    "HTTPS://app.example.test/callback",
    "//evil.test/callback",
    "javascript:alert(1)",
    CALLBACK + "?code=attacker",
    CALLBACK + "?state=attacker",
]


def test_hostile_redirects_are_refused_over_http(server):
    for redirect_to in HOSTILE:
        page = requests.get(server.url + "/login", params={"redirect_to": redirect_to},
                            timeout=10)
        assert page.status_code == 422, redirect_to
        asked = requests.post(server.url + "/api/v1/magic-link/request",
                              json={"email": "ada@example.com", "redirect_to": redirect_to},
                              timeout=10)
        assert asked.status_code == 422, redirect_to
        assert asked.json()["code"] == "invalid_redirect"
