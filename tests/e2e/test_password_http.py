"""Issue 2's "done when", over real HTTP: gunicorn + MySQL, verified with only the JWKS."""

from __future__ import annotations

import jwt
import requests

PASSWORD = "correct horse battery staple"


def test_round_trip_over_http_on_mysql(live_server):
    server = live_server()
    base = server.url + "/api/v1"

    signed_up = requests.post(base + "/signup", json={"email": "Lin@Example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    assert signed_up.json()["user"]["email"] == "lin@example.com"

    signed_in = requests.post(base + "/signin", json={"email": "lin@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_in.status_code == 200
    tokens = signed_in.json()

    # Another service verifies offline, knowing only the JWKS URL.
    jwks = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], key, algorithms=["ES256"],
                        audience="authserver", issuer=server.url)
    assert claims["sub"] == tokens["user"]["id"] and claims["amr"] == ["pwd"]

    auth = {"Authorization": "Bearer " + tokens["access_token"]}
    me = requests.get(base + "/me", headers=auth, timeout=10)
    assert me.status_code == 200 and me.json()["email"] == "lin@example.com"

    refreshed = requests.post(base + "/token/refresh",
                              json={"refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]

    new_auth = {"Authorization": "Bearer " + new["access_token"]}
    assert requests.post(base + "/logout", headers=new_auth, timeout=10).status_code == 204
    for headers in (auth, new_auth):
        refused = requests.get(base + "/me", headers=headers, timeout=10)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    again = requests.post(base + "/token/refresh",
                          json={"refresh_token": new["refresh_token"]}, timeout=10)
    assert again.status_code == 401 and again.json()["code"] == "invalid_token"
