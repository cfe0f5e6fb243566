"""Refresh, logout, me, isAuthenticated, isAdmin over the API."""

from __future__ import annotations

from tests.helpers import bearer, problem


def test_round_trip(client, signup):
    tokens = signup()
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.get_json()["email"] == "ada@example.com"

    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new = refreshed.get_json()
    assert new["refresh_token"] != tokens["refresh_token"]

    assert client.post("/api/v1/logout", headers=bearer(new["access_token"])).status_code == 204
    for token in (tokens["access_token"], new["access_token"]):
        response = client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    again = client.post("/api/v1/token/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


def test_refresh_reuse_revokes_the_session(client, signup, clock):
    tokens = signup()
    new = client.post("/api/v1/token/refresh",
                      json={"refresh_token": tokens["refresh_token"]}).get_json()
    clock.travel(30)
    replay = client.post("/api/v1/token/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    assert client.get("/api/v1/me", headers=bearer(new["access_token"])).status_code == 401
    legit = client.post("/api/v1/token/refresh", json={"refresh_token": new["refresh_token"]})
    assert legit.status_code == 401


def test_unknown_refresh_token(client):
    response = client.post("/api/v1/token/refresh", json={"refresh_token": "x" * 43})
    assert response.status_code == 401 and problem(response)["code"] == "invalid_token"


def test_missing_and_malformed_authorization(client):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer not.a.jwt"}):
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_token"
        assert "Bearer" in response.headers["WWW-Authenticate"]


def test_is_authenticated_with_bearer_and_legacy_header(client, signup):
    tokens = signup()
    for headers in (bearer(tokens["access_token"]), {"x-access-token": tokens["access_token"]}):
        response = client.get("/api/v1/isAuthenticated", headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        assert body["user_id"] == tokens["user"]["id"] and body["session_id"]
        assert body["roles"] == []
    # The legacy header is for isAuthenticated only.
    assert client.get("/api/v1/me",
                      headers={"x-access-token": tokens["access_token"]}).status_code == 401


def test_is_admin(client, signup, admin_token):
    tokens = signup()
    assert client.get("/api/v1/isAdmin", headers=bearer(tokens["access_token"])).get_json() == \
        {"is_admin": False}
    assert client.get("/api/v1/isAdmin", headers=bearer(admin_token)).get_json() == \
        {"is_admin": True}


def test_successful_answers_carry_no_backoff_headers(client, signup):
    tokens = signup()
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert "Retry-After" not in refreshed.headers
    logout = client.post("/api/v1/logout",
                         headers=bearer(refreshed.get_json()["access_token"]))
    assert logout.status_code == 204 and "Content-Type" not in logout.headers
