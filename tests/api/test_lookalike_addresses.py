"""Addresses that differ only by accents or case-folding tricks are different accounts.

On MySQL a linguistic collation would compare "exámple" equal to "example" and hand the
owner of a look-alike domain someone else's account; the tables use utf8mb4_bin.
"""

from __future__ import annotations

from tests.conftest import PASSWORD
from tests.flows.magic_helpers import email_messages, link_in, token_of


def test_magic_link_to_a_lookalike_domain_opens_its_own_account(app, client, signup):
    victim = signup("victim@example.com")["user"]
    lookalike = "victim@exámple.com"
    assert client.post("/api/v1/magic-link/request", json={"email": lookalike}).status_code == 202
    [mail] = email_messages(app.config["OUTBOX_DIR"], to=lookalike)
    token = token_of(link_in(mail["text"]))
    response = client.post("/api/v1/magic-link/verify", json={"token": token})
    assert response.status_code == 200
    user = response.get_json()["user"]
    assert user["id"] != victim["id"] and user["email"] == lookalike


def test_password_sign_in_with_a_lookalike_address_fails(client, signup):
    signup("victim@example.com")
    for email in ("vìctim@example.com", "victim@exámple.com"):
        response = client.post("/api/v1/signin", json={"email": email, "password": PASSWORD})
        assert response.status_code == 401, email


def test_roles_differing_in_case_are_different_roles(app):
    from authserver import accounts

    user = accounts.create(email="r@example.com", roles=["Admin"])
    assert user.role_names == ["Admin"]
    accounts.add_role(user, "admin")
    assert sorted(user.role_names) == ["Admin", "admin"]
