"""The red-team reproductions over real HTTP, against gunicorn on MySQL: encoded-word and
look-alike addresses, and breached passwords checked through a loopback range API."""

from __future__ import annotations

import requests

from tests.fakes.pwned_server import FakePwned, sha1_hex

PASSWORD = "correct horse battery staple"
BREACHED = "Tr0ub4dor&3 horse"


def test_hostile_addresses_and_breached_passwords_are_refused_over_http(live_server):
    with FakePwned() as pwned:
        pwned.breach(BREACHED, 12)
        server = live_server(PWNED_PASSWORDS_URL=pwned.url)
        base = server.url + "/api/v1"

        first = requests.post(base + "/signup", json={"email": "ada@example.com",
                                                      "password": PASSWORD}, timeout=10)
        assert first.status_code == 201, first.text

        for address in ("=?utf-8?q?ada?=@example.com", "=?utf-8?b?YWRh?=@example.com",
                        "\uff41da@example.com", "a\u200dda@example.com",
                        "Ada <ada@example.com>"):
            for path, body in (("/signup", {"email": address, "password": PASSWORD}),
                               ("/magic-link/request", {"email": address})):
                response = requests.post(base + path, json=body, timeout=10)
                assert response.status_code == 422, (address, path, response.text)
                assert response.json()["code"] == "invalid_email"

        breached = requests.post(base + "/signup", json={"email": "bob@example.com",
                                                         "password": BREACHED}, timeout=10)
        assert breached.status_code == 422 and breached.json()["code"] == "breached_password"
        assert "12" not in breached.json()["detail"]
        asked = [r for r in pwned.requests if r.path.startswith("/range/")]
        assert [r.path for r in asked] == ["/range/" + sha1_hex(PASSWORD)[:5],
                                           "/range/" + sha1_hex(BREACHED)[:5]]
        assert all(r.headers.get("Add-Padding") == "true" for r in asked)
