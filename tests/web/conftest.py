"""Helpers for driving the HTML pages with the Flask test client."""

from __future__ import annotations

import re
from typing import Any

import pytest

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # The test client speaks plain http; cookies marked Secure would not come back.
    return {"SESSION_COOKIE_SECURE": False}


@pytest.fixture
def web_login(client: Any) -> Any:
    """Sign in through the password form; returns the final response."""

    def _login(email: str, password: str, query: str = "") -> Any:
        page = client.get("/login" + query)
        token = csrf_from(page.get_data(as_text=True))
        return client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})

    return _login


@pytest.fixture
def client(app: Any) -> Any:
    """Pages keep per-request state in `g` (CSRF): one app context per request, as in production."""
    from tests.conftest import IsolatedClient

    app.test_client_class = IsolatedClient
    return app.test_client()
