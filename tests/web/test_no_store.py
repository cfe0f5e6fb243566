"""Pages with personal data, and every API answer, are never stored by a cache."""

from __future__ import annotations

from tests.conftest import PASSWORD


def test_account_page_is_no_store(client, signup, web_login):
    signup()
    signed_in = web_login("ada@example.com", PASSWORD)
    assert signed_in.status_code == 303
    page = client.get("/account")
    assert page.status_code == 200 and "ada@example.com" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Pragma"] == "no-cache"


def test_every_page_and_its_redirects_are_no_store(client):
    for path in ("/login", "/signup", "/login/email", "/login/sms", "/account"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path


def test_static_files_and_the_jwks_keep_their_own_caching(client):
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.headers["Cache-Control"] == "public, max-age=300"
    assert "Pragma" not in jwks.headers
