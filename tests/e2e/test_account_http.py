"""The account changing itself over real HTTP (gunicorn + MySQL, schema made by the
migrations): logout with and without a body, sessions, password change, deletion."""

from __future__ import annotations

from typing import Any

import requests

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase for lin"
EMAIL = "lin@example.com"


def _sign_in(base: str, password: str = PASSWORD) -> dict[str, Any]:
    response = requests.post(base + "/signin", json={"email": EMAIL, "password": password},
                             timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _auth(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": "Bearer " + tokens["access_token"]}


def test_account_changes_over_http_on_mysql(live_server):
    server = live_server()
    base = server.url + "/api/v1"
    first = requests.post(base + "/signup", json={"email": EMAIL, "password": PASSWORD},
                          timeout=10).json()
    second, third = _sign_in(base), _sign_in(base)

    # Today's bodiless logout (no Content-Type, no body) still ends just this session.
    bare = requests.post(base + "/logout", headers=_auth(third), timeout=10)
    assert bare.status_code == 204
    assert requests.get(base + "/me", headers=_auth(third), timeout=10).status_code == 401

    listed = requests.get(base + "/me/sessions", headers=_auth(second), timeout=10).json()
    assert sorted(row["current"] for row in listed["sessions"]) == [False, True]
    assert {row["device"] for row in listed["sessions"]} == {"Python"}

    changed = requests.post(base + "/me/password", headers=_auth(second), timeout=10,
                            json={"current_password": PASSWORD, "password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    assert requests.post(base + "/token/refresh", json={"refresh_token":
                         first["refresh_token"]}, timeout=10).status_code == 401

    fourth = _sign_in(base, NEW_PASSWORD)
    others = requests.post(base + "/logout", json={"scope": "others"}, headers=_auth(fourth),
                           timeout=10)
    assert others.status_code == 204
    assert requests.get(base + "/me", headers=_auth(second), timeout=10).status_code == 401

    deleted = requests.delete(base + "/me", headers=_auth(fourth), timeout=10)
    assert deleted.status_code == 204
    assert requests.get(base + "/me", headers=_auth(fourth), timeout=10).status_code == 401
    again = requests.post(base + "/signup", json={"email": EMAIL, "password": PASSWORD},
                          timeout=10)
    assert again.status_code == 201
