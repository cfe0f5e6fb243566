"""Helpers for driving the HTML pages with the Flask test client."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
# The password form's action: /login, plus ?handoff=<attempt> while an app's sign-in is on.
LOGIN_ACTION_RE = re.compile(r'<form method="post" action="(/login(?:\?[^"]*)?)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def action_of(html: str, pattern: re.Pattern[str] = LOGIN_ACTION_RE) -> str:
    """The URL a page's form posts to (as a browser would submit it)."""
    match = pattern.search(html)
    assert match, "no such form on the page"
    return unescape(match.group(1))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # The test client speaks plain http; cookies marked Secure would not come back.
    return {"SESSION_COOKIE_SECURE": False}


@pytest.fixture
def web_login(client: Any) -> Any:
    """Sign in through the password form; returns the final response."""

    def _login(email: str, password: str, query: str = "") -> Any:
        html = client.get("/login" + query).get_data(as_text=True)
        return client.post(action_of(html), data={"email": email, "password": password,
                                                  "csrf_token": csrf_from(html)})

    return _login


@pytest.fixture
def client(app: Any) -> Any:
    """Pages keep per-request state in `g` (CSRF): one app context per request, as in production."""
    from tests.conftest import IsolatedClient

    app.test_client_class = IsolatedClient
    return app.test_client()
