"""Admin endpoints: only for role admin; role changes and disabling take effect at once."""

from __future__ import annotations

import pytest

from tests.helpers import bearer, problem


def test_non_admin_is_refused(client, signup):
    tokens = signup()
    auth = bearer(tokens["access_token"])
    uid = tokens["user"]["id"]
    for method, path, body in [
        ("get", "/api/v1/admin/users?email=ada@example.com", None),
        ("post", f"/api/v1/admin/users/{uid}/roles", {"role": "admin"}),
        ("delete", f"/api/v1/admin/users/{uid}/roles/admin", None),
        ("post", f"/api/v1/admin/users/{uid}/disable", None),
    ]:
        response = getattr(client, method)(path, headers=auth, json=body)
        assert response.status_code == 403, path
        assert problem(response)["code"] == "forbidden"
    assert client.get("/api/v1/admin/users").status_code == 401


def test_find_grant_revoke(client, signup, admin_token):
    tokens = signup()
    auth = bearer(admin_token)
    uid = tokens["user"]["id"]
    found = client.get("/api/v1/admin/users?email=ADA@example.com", headers=auth).get_json()
    assert [u["id"] for u in found["users"]] == [uid]

    granted = client.post(f"/api/v1/admin/users/{uid}/roles", headers=auth,
                          json={"role": "editor"})
    assert granted.status_code == 200 and granted.get_json()["roles"] == ["editor"]
    removed = client.delete(f"/api/v1/admin/users/{uid}/roles/editor", headers=auth)
    assert removed.status_code == 200 and removed.get_json()["roles"] == []


def test_unknown_user_is_404(client, admin_token):
    auth = bearer(admin_token)
    for response in (
        client.post("/api/v1/admin/users/nope/roles", headers=auth, json={"role": "x"}),
        client.delete("/api/v1/admin/users/nope/roles/x", headers=auth),
        client.post("/api/v1/admin/users/nope/disable", headers=auth),
    ):
        assert response.status_code == 404 and problem(response)["code"] == "not_found"


def test_disable_revokes_every_session_at_once(client, signup, admin_token):
    first = signup()
    second = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                 "password": "correct horse battery staple"})
    second = second.get_json()
    uid = first["user"]["id"]
    response = client.post(f"/api/v1/admin/users/{uid}/disable", headers=bearer(admin_token))
    assert response.status_code == 200 and response.get_json()["disabled"] is True
    for tokens in (first, second):
        assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
        refresh = client.post("/api/v1/token/refresh",
                              json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401


def test_revoked_admin_role_stops_working_immediately(client, app, admin_token):
    from authserver import accounts

    accounts.remove_role(accounts.by_email("root@example.com"), "admin")
    response = client.get("/api/v1/admin/users", headers=bearer(admin_token))
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["a b/c", "", "x" * 65, "role\n", "ümlaut"])
def test_role_names_are_plain(client, signup, admin_token, role):
    uid = signup()["user"]["id"]
    response = client.post(f"/api/v1/admin/users/{uid}/roles", headers=bearer(admin_token),
                           json={"role": role})
    assert response.status_code in (400, 422) and problem(response)["code"] == "invalid_request"
