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


# -- finding by phone, paging, enabling, not disabling oneself ---------------------------------
def _make_users(count: int, prefix: str = "user") -> list[str]:
    from authserver import accounts, clock
    from authserver.extensions import db

    ids = []
    for n in range(count):
        ids.append(accounts.create(email=f"{prefix}{n:02d}@example.com").id)
        if n % 3 == 0:
            clock.travel(1)  # some share a created_at, some don't: ties go by id
    db.session.commit()
    return ids


def test_find_by_phone_in_any_notation(client, admin_token):
    from authserver import accounts
    from authserver.extensions import db

    user = accounts.create(phone="+16502530000")
    accounts.create(phone="+16502530001")
    db.session.commit()
    auth = bearer(admin_token)
    for phone in ("+16502530000", "+1 (650) 253-0000", "%2B1%20650%20253%200000"):
        found = client.get(f"/api/v1/admin/users?phone={phone}", headers=auth)
        assert found.status_code == 200, found.get_json()
        assert [u["id"] for u in found.get_json()["users"]] == [user.id]
        assert found.get_json()["next_cursor"] is None
    nobody = client.get("/api/v1/admin/users?phone=%2B16502539999", headers=auth)
    assert nobody.get_json() == {"users": [], "next_cursor": None}
    bad = client.get("/api/v1/admin/users?phone=not-a-phone", headers=auth)
    assert bad.status_code == 422 and problem(bad)["code"] == "invalid_phone"


def test_pages_walk_every_user_once_oldest_first(client, admin_token, clock):
    created = _make_users(12)
    auth = bearer(admin_token)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = client.get("/api/v1/admin/users" + query, headers=auth)
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        assert len(body["users"]) <= 5
        seen += [u["id"] for u in body["users"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # The admin (made first) and the 12 users, each once, in the order they were made.
    assert len(seen) == len(set(seen)) == 13
    from authserver.extensions import db
    from authserver.models import User

    rows = db.session.query(User).filter(User.id.in_(created)).all()
    assert [uid for uid in seen if uid in created] == [
        u.id for u in sorted(rows, key=lambda u: (u.created_at, u.id))]
    assert pages == 3
    # A user made after the first page was read shows up on a later one.
    first = client.get("/api/v1/admin/users?limit=5", headers=auth).get_json()
    clock.travel(5)
    late = _make_users(1, prefix="late")[0]
    rest = client.get(f"/api/v1/admin/users?limit=100&cursor={first['next_cursor']}",
                      headers=auth).get_json()
    assert late in [u["id"] for u in rest["users"]]
    assert not {u["id"] for u in first["users"]} & {u["id"] for u in rest["users"]}


@pytest.mark.parametrize("query", ["cursor=nonsense", "cursor=W10", "cursor=WzEsMl0",
                                   "cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwieCJd",
                                   # ["0001-01-01T00:00:00+14:00", "x"]: before the year 1
                                   "cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwieCJd",
                                   "limit=0", "limit=101", "limit=ten", "limit=-1"])
def test_bad_cursor_or_limit_is_422(client, admin_token, query):
    response = client.get(f"/api/v1/admin/users?{query}", headers=bearer(admin_token))
    assert response.status_code == 422 and problem(response)["code"] == "invalid_request"
    assert problem(response)["detail"]


def test_an_admin_cannot_disable_themselves(client, admin_token):
    from authserver import accounts

    me = accounts.by_email("root@example.com")
    response = client.post(f"/api/v1/admin/users/{me.id}/disable", headers=bearer(admin_token))
    assert response.status_code == 409
    assert problem(response)["code"] == "cannot_disable_self"
    assert client.get("/api/v1/me", headers=bearer(admin_token)).status_code == 200
    assert accounts.by_email("root@example.com").disabled is False


def test_enable_after_disable(client, signup, admin_token):
    tokens = signup()
    uid = tokens["user"]["id"]
    auth = bearer(admin_token)
    assert client.post(f"/api/v1/admin/users/{uid}/disable", headers=auth).status_code == 200
    refused = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                  "password": "correct horse battery staple"})
    assert refused.status_code == 403
    enabled = client.post(f"/api/v1/admin/users/{uid}/enable", headers=auth)
    assert enabled.status_code == 200 and enabled.get_json()["disabled"] is False
    signed_in = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                    "password": "correct horse battery staple"})
    assert signed_in.status_code == 200
    # The sessions ended by disabling stay ended.
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/api/v1/admin/users/nope/enable", headers=auth).status_code == 404
    other = signup("bob@example.com")
    forbidden = client.post(f"/api/v1/admin/users/{uid}/enable",
                            headers=bearer(other["access_token"]))
    assert forbidden.status_code == 403
