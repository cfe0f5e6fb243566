"""An app's sign-in through the pages: `state` reaches the app, and the pending hand-off
belongs to one attempt only (login CSRF into apps, abandoned sign-ins)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code
from tests.web.conftest import csrf_from

CALLBACK = "https://app.example.test/callback"
PHONE = "+16502530000"
FORM_RE = re.compile(r'<form method="post" action="([^"]+)"')
LINK_RE = re.compile(r'<a href="([^"]+)"')


def app_query(state: str | None = "st-123", **extra: str) -> dict[str, str]:
    query = {"redirect_to": CALLBACK, **extra}
    if state is not None:
        query["state"] = state
    return query


def form_action(html: str, path: str) -> str:
    """The action of the page's form posting to `path` (with whatever query it carries)."""
    for action in map(unescape, FORM_RE.findall(html)):
        if urlsplit(action).path == path:
            return action
    raise AssertionError(f"no form posting to {path}")


def link_to(html: str, path: str) -> str:
    for href in map(unescape, LINK_RE.findall(html)):
        if urlsplit(href).path == path:
            return href
    raise AssertionError(f"no link to {path}")


def password_post(client, html: str, email: str = "ada@example.com"):
    return client.post(form_action(html, "/login"), data={
        "email": email, "password": PASSWORD, "csrf_token": csrf_from(html)})


def next_step(client, html: str, identifier: str) -> str:
    """/login's first step: the identifier posted back to /login answers the next page."""
    step = client.post(form_action(html, "/login"), data={
        "identifier": identifier, "csrf_token": csrf_from(html)})
    assert step.status_code == 200, step.get_data(as_text=True)[:300]
    return step.get_data(as_text=True)


def app_params(response) -> dict[str, list[str]]:
    """The query the app's callback receives, after checking the 303 goes to the app."""
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return parse_qs(location.query)


def lands_on_account(response) -> bool:
    return response.status_code == 303 and urlsplit(response.headers["Location"]).path == \
        "/account"


# --- state travels from /login?…&state=… to redirect_to?code=…&state=… ----------------------

def test_state_reaches_the_app_after_a_password_sign_in(client, signup):
    signup()
    html = client.get("/login", query_string=app_query("opaque/+ =state")).get_data(
        as_text=True)
    params = app_params(password_post(client, html))
    assert params["state"] == ["opaque/+ =state"]
    exchanged = client.post("/api/v1/token/exchange", json={"code": params["code"][0]})
    assert exchanged.status_code == 200


def test_state_reaches_the_app_after_an_sms_sign_in_begun_on_the_login_page(app, client):
    html = next_step(client, client.get("/login", query_string=app_query()).get_data(
        as_text=True), PHONE)
    sent = client.post(form_action(html, "/login/sms"),
                       data={"phone": PHONE, "csrf_token": csrf_from(html)})
    assert sent.status_code == 303
    code_page = client.get(sent.headers["Location"]).get_data(as_text=True)
    signed_in = client.post(form_action(code_page, "/login/sms/code"), data={
        "code": last_code(app.config["OUTBOX_DIR"], PHONE), "csrf_token": csrf_from(code_page)})
    assert app_params(signed_in)["state"] == ["st-123"]


def test_state_reaches_the_app_after_a_sign_up_begun_on_the_login_page(client):
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    page = client.get(link_to(html, "/signup")).get_data(as_text=True)
    created = client.post(form_action(page, "/signup"), data={
        "email": "new@example.com", "password": PASSWORD, "csrf_token": csrf_from(page)})
    assert app_params(created)["state"] == ["st-123"]


def test_state_reaches_the_app_after_a_sign_up_begun_on_the_signup_page(client):
    page = client.get("/signup", query_string=app_query()).get_data(as_text=True)
    created = client.post(form_action(page, "/signup"), data={
        "email": "new@example.com", "password": PASSWORD, "csrf_token": csrf_from(page)})
    assert app_params(created)["state"] == ["st-123"]


def test_without_state_the_app_gets_only_the_code(client, signup):
    signup()
    html = client.get("/login", query_string=app_query(state=None)).get_data(as_text=True)
    params = app_params(password_post(client, html))
    assert set(params) == {"code"}


@pytest.mark.parametrize("state", ["a" * 513, "caf\u00e9", "two\nlines", "nul\x00"])
def test_login_refuses_a_bad_state(client, signup, state):
    signup()
    response = client.get("/login", query_string=app_query(state))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "not allowed to receive sign-ins" in html
    # Nothing pending: signing in here goes to the account page, not the app.
    assert lands_on_account(password_post(client, html))


@pytest.mark.parametrize("redirect_to", [CALLBACK + "?code=attacker",
                                         CALLBACK + "?state=attacker",
                                         CALLBACK + "?x=1&code=a"])
def test_login_refuses_a_redirect_that_brings_its_own_code_or_state(client, redirect_to):
    response = client.get("/login", query_string={"redirect_to": redirect_to})
    assert response.status_code == 422


# --- a pending hand-off belongs to one attempt ------------------------------------------------

def test_abandoned_app_sign_in_then_a_normal_sign_in_lands_on_account(client, signup):
    """Login CSRF into apps: an app sign-in pushed into (or abandoned in) this browser…"""
    signup()
    assert client.get("/login", query_string=app_query()).status_code == 200
    # …and later the person signs in the ordinary way.
    later = client.get("/login").get_data(as_text=True)
    assert "handoff=" not in later
    assert lands_on_account(password_post(client, later))


def test_abandoned_app_sign_in_then_an_sms_sign_in_started_directly(app, client):
    client.get("/login", query_string=app_query())
    page = client.get("/login/sms").get_data(as_text=True)
    sent = client.post(form_action(page, "/login/sms"),
                       data={"phone": PHONE, "csrf_token": csrf_from(page)})
    code_page = client.get(sent.headers["Location"]).get_data(as_text=True)
    signed_in = client.post(form_action(code_page, "/login/sms/code"), data={
        "code": last_code(app.config["OUTBOX_DIR"], PHONE), "csrf_token": csrf_from(code_page)})
    assert lands_on_account(signed_in)


def test_abandoned_app_sign_in_then_a_sign_up_started_directly(client):
    client.get("/login", query_string=app_query())
    page = client.get("/signup").get_data(as_text=True)
    created = client.post(form_action(page, "/signup"), data={
        "email": "new@example.com", "password": PASSWORD, "csrf_token": csrf_from(page)})
    assert lands_on_account(created)


def test_abandoned_app_sign_in_does_not_ride_on_a_later_mailed_link(app, client):
    client.get("/login", query_string=app_query())
    page = client.get("/login/email").get_data(as_text=True)
    client.post(form_action(page, "/login/email"),
                data={"email": "ada@example.com", "csrf_token": csrf_from(page)})
    token = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")[0]
    confirm = client.get("/auth/magic", query_string={"token": token}).get_data(as_text=True)
    hidden = re.search(r'name="token"[^>]*value="([^"]+)"', confirm)
    assert hidden
    response = client.post("/auth/magic", data={"token": hidden.group(1),
                                                "csrf_token": csrf_from(confirm)})
    assert lands_on_account(response)


def test_an_app_sign_in_mailed_from_the_login_page_keeps_its_redirect(app, client):
    html = next_step(client, client.get("/login", query_string=app_query()).get_data(
        as_text=True), "ada@example.com")
    client.post(form_action(html, "/login/email"),
                data={"email": "ada@example.com", "csrf_token": csrf_from(html)})
    token = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")[0]
    confirm = client.get("/auth/magic", query_string={"token": token}).get_data(as_text=True)
    hidden = re.search(r'name="token"[^>]*value="([^"]+)"', confirm)
    assert hidden
    response = client.post("/auth/magic", data={"token": hidden.group(1),
                                                "csrf_token": csrf_from(confirm)})
    assert "code" in app_params(response)


def test_a_mailed_link_sign_in_does_not_consume_a_pending_app_sign_in(app, client):
    """A link mailed without redirect_to goes to /account even while an app sign-in waits."""
    from authserver.services import configure

    configure(app, MAGIC_LINK_BINDING=False)  # the link's button works in this browser
    client.post("/api/v1/magic-link/request", json={"email": "ada@example.com"})
    token = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")[0]
    client.get("/login", query_string=app_query())  # pending in the cookie
    confirm = client.get("/auth/magic", query_string={"token": token}).get_data(as_text=True)
    hidden = re.search(r'name="token"[^>]*value="([^"]+)"', confirm)
    assert hidden
    response = client.post("/auth/magic", data={"token": hidden.group(1),
                                                "csrf_token": csrf_from(confirm)})
    assert lands_on_account(response)


def test_a_pending_app_sign_in_expires(client, signup, clock):
    signup()
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    clock.travel(601)  # PENDING_HANDOFF_TTL
    assert lands_on_account(password_post(client, html))


def test_a_pending_app_sign_in_still_works_within_its_time(client, signup, clock):
    signup()
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    clock.travel(540)
    assert "code" in app_params(password_post(client, html))


def test_a_pending_app_sign_in_is_consumed_by_its_sign_in(client, signup):
    signup()
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    assert "code" in app_params(password_post(client, html))
    # Sign out, then replay the very same page (its form still names the old attempt).
    account = client.get("/account").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(account)})
    replay = client.post(form_action(html, "/login"), data={
        "email": "ada@example.com", "password": PASSWORD,
        "csrf_token": csrf_from(client.get("/login").get_data(as_text=True))})
    assert lands_on_account(replay)


def test_a_new_app_sign_in_replaces_an_older_one(client, signup):
    signup()
    first = client.get("/login", query_string=app_query("first")).get_data(as_text=True)
    second = client.get("/login", query_string=app_query("second")).get_data(as_text=True)
    # The older page's attempt is gone: its form signs in to the account, not to the app.
    assert lands_on_account(password_post(client, first))
    assert second != first


def test_a_refused_app_sign_in_drops_the_pending_one(client, signup):
    signup()
    client.get("/login", query_string=app_query())
    refused = client.get("/login", query_string={"redirect_to": "https://evil.test/"})
    assert refused.status_code == 422
    assert lands_on_account(password_post(client, refused.get_data(as_text=True)))


def test_a_forged_attempt_id_carries_nothing(client, signup):
    signup()
    client.get("/login", query_string=app_query())
    page = client.get("/login", query_string={"handoff": "guessed"}).get_data(as_text=True)
    assert lands_on_account(password_post(client, page))


def test_pages_of_an_attempt_carry_it_and_others_do_not(client):
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    [attempt] = {parse_qs(urlsplit(a).query)["handoff"][0]
                 for a in map(unescape, FORM_RE.findall(html))}
    assert parse_qs(urlsplit(form_action(html, "/login")).query)["handoff"] == [attempt]
    assert parse_qs(urlsplit(link_to(html, "/signup")).query)["handoff"] == [attempt]
    # The identifier's next step carries it on: to the password, the mail and the text.
    by_mail = next_step(client, html, "ada@example.com")
    for path in ("/login", "/login/email"):
        assert parse_qs(urlsplit(form_action(by_mail, path)).query)["handoff"] == [attempt]
    by_text = next_step(client, html, PHONE)
    assert parse_qs(urlsplit(form_action(by_text, "/login/sms")).query)["handoff"] == [attempt]
    plain = client.get("/login").get_data(as_text=True)
    assert "handoff=" not in plain


# --- someone already signed in --------------------------------------------------------------

def _signed_in(client, signup) -> None:
    signup()
    assert lands_on_account(password_post(client, client.get("/login").get_data(as_text=True)))


def test_signed_in_app_sign_in_goes_straight_on_with_a_fresh_code(client, signup):
    _signed_in(client, signup)
    first = app_params(client.get("/login", query_string=app_query()))
    second = app_params(client.get("/login", query_string=app_query("again")))
    assert first["state"] == ["st-123"] and second["state"] == ["again"]
    assert first["code"] != second["code"]
    exchanged = client.post("/api/v1/token/exchange", json={"code": first["code"][0]})
    assert exchanged.status_code == 200
    body = exchanged.get_json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["user"]["email"] == "ada@example.com" and claims["amr"] == ["pwd"]
    # The browser stays signed in, and nothing is left pending.
    assert client.get("/account").status_code == 200
    assert lands_on_account(client.get("/login"))


def test_signed_in_app_sign_in_keeps_the_browsers_sign_in_time(client, signup, clock):
    """The app's session is no fresher than the browser's sign-in: an old browser session
    mints no tokens that pass the recent-sign-in check (REAUTH_MAX_AGE)."""
    _signed_in(client, signup)
    signed_in_at = clock.timestamp()
    clock.travel(3600)
    code = app_params(client.get("/login", query_string=app_query()))["code"][0]
    body = client.post("/api/v1/token/exchange", json={"code": code}).get_json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert abs(claims["auth_time"] - signed_in_at) <= 1
    assert claims["iat"] - claims["auth_time"] >= 3600
    stale = client.post("/api/v1/me/password", headers={
        "Authorization": "Bearer " + body["access_token"]}, json={
        "current_password": PASSWORD, "password": "an entirely new passphrase here"})
    assert stale.status_code == 401 and stale.get_json()["code"] == "reauthentication_required"
    # A refresh of the app's session keeps it too.
    again = client.post("/api/v1/token/refresh", json={"refresh_token": body["refresh_token"]})
    assert jwt.decode(again.get_json()["access_token"], options={"verify_signature": False}
                      )["auth_time"] == claims["auth_time"]


def test_signed_in_app_sign_in_keeps_pkce(client, signup):
    import base64
    import hashlib

    _signed_in(client, signup)
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    code = app_params(client.get("/login", query_string=app_query(
        code_challenge=challenge.rstrip(b"=").decode(), code_challenge_method="S256")))["code"]
    assert client.post("/api/v1/token/exchange",
                       json={"code": code[0]}).status_code == 401  # no verifier: burnt
    code = app_params(client.get("/login", query_string=app_query(
        code_challenge=challenge.rstrip(b"=").decode(), code_challenge_method="S256")))["code"]
    assert client.post("/api/v1/token/exchange", json={
        "code": code[0], "code_verifier": verifier}).status_code == 200


@pytest.mark.parametrize("query", [{"redirect_to": "https://evil.test/"},
                                   {"redirect_to": CALLBACK + "?code=attacker"},
                                   {"redirect_to": CALLBACK, "state": "two\nlines"},
                                   {"redirect_to": CALLBACK, "code_challenge": "short"}])
def test_signed_in_never_hands_off_to_a_refused_app(client, signup, query):
    _signed_in(client, signup)
    response = client.get("/login", query_string=query)
    assert response.status_code == 422
    assert "code=" not in response.headers.get("Location", "")
    assert "not allowed to receive sign-ins" in response.get_data(as_text=True)
