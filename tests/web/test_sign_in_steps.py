"""/login identifier first: one box, then the ways open to what was typed; the mail's code on
"Check your inbox"; tries left and a resend countdown on the code pages; focused errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail, wrong_code
from tests.flows.sms_helpers import last_code
from tests.web.conftest import csrf_from
from tests.web.test_handoff_attempts import (
    CALLBACK,
    app_params,
    app_query,
    form_action,
    lands_on_account,
    next_step,
)

PHONE = "+16502530000"
FIELD_RE = re.compile(r'<input[^>]*\sname="([^"]+)"')


def _step(client, identifier: str, query: dict[str, str] | None = None):
    html = client.get("/login", query_string=query or {}).get_data(as_text=True)
    return client.post(form_action(html, "/login"), data={
        "identifier": identifier, "csrf_token": csrf_from(html)})


def _ids_are_unique(html: str) -> None:
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for target in re.findall(r'<label for="([^"]+)"', html):
        assert f'id="{target}"' in html


def _focused_alert(html: str, element_id: str) -> str:
    """The element `element_id`: announced, focusable, and focused when the page loads."""
    match = re.search(rf'<[a-z]+ [^>]*id="{element_id}"[^>]*>', html)
    assert match, f"no #{element_id}"
    tag = match.group(0)
    assert 'role="alert"' in tag and 'aria-live="assertive"' in tag
    assert 'tabindex="-1"' in tag and "autofocus" in tag
    # The first autofocus of a page wins: nothing before the error asks for it.
    assert "autofocus" not in html[:match.start()]
    return tag


def test_login_asks_for_one_identifier(client):
    html = client.get("/login").get_data(as_text=True)
    assert FIELD_RE.findall(html) == ["csrf_token", "identifier"]
    assert '<label for="identifier">E-mail or phone number</label>' in html
    assert 'autocomplete="username"' in html and "password" not in FIELD_RE.findall(html)
    assert html.count("<form") == 1 and "Continue" in html
    assert 'href="/login/forgot"' in html and 'href="/signup"' in html
    _ids_are_unique(html)


def test_an_address_leads_to_its_password_or_a_mailed_link(client):
    response = _step(client, "Ada@Example.com ")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Ada@Example.com" in html
    assert form_action(html, "/login") == "/login"
    assert form_action(html, "/login/email") == "/login/email"
    assert re.search(r'<input type="email" name="email" id="email" value="Ada@Example.com" '
                     r'autocomplete="username" hidden>', html)
    assert 'autocomplete="current-password"' in html
    assert 'href="/login/forgot"' in html and "Forgot your password?" in html
    _ids_are_unique(html)


def test_the_next_step_is_the_same_for_a_known_and_an_unknown_address(client, signup):
    signup()
    known = _step(client, "ada@example.com")
    unknown = _step(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200

    def shape(response, email: str) -> str:
        html = response.get_data(as_text=True).replace(email, "EMAIL")
        return re.sub(r'value="[^"]{40,}"', 'value="CSRF"', html)

    assert shape(known, "ada@example.com") == shape(unknown, "nobody@example.com")


def test_a_number_leads_to_a_texted_code(client):
    html = _step(client, "(650) 253-0000").get_data(as_text=True)
    assert form_action(html, "/login/sms") == "/login/sms"
    assert 'name="phone" id="phone" value="(650) 253-0000"' in html
    assert "password" not in FIELD_RE.findall(html)
    _ids_are_unique(html)


@pytest.mark.parametrize("typed", ["hello", "ada@", "12", "   "])
def test_neither_an_address_nor_a_number_is_refused_in_place(client, typed):
    response = _step(client, typed)
    assert response.status_code in (400, 422)
    html = response.get_data(as_text=True)
    _focused_alert(html, "identifier-error")
    assert 'aria-invalid="true"' in html and 'aria-describedby="identifier-error"' in html
    assert "password" not in FIELD_RE.findall(html)


def test_password_sign_in_through_the_steps(client, signup):
    signup()
    html = _step(client, "ada@example.com").get_data(as_text=True)
    response = client.post(form_action(html, "/login"), data={
        "email": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_from(html)})
    assert lands_on_account(response)


@pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
def test_a_wrong_password_is_a_focused_announced_error(client, signup, email):
    signup()
    html = _step(client, email).get_data(as_text=True)
    response = client.post(form_action(html, "/login"), data={
        "email": email, "password": "not the password at all", "csrf_token": csrf_from(html)})
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    tag = _focused_alert(page, "password-error")
    assert 'class="error"' in tag
    assert "The e-mail address or password is incorrect." in page
    # Still the password step for the same address, ready for another try.
    assert f'name="email" id="email" value="{email}"' in page
    _ids_are_unique(page)


def test_a_password_post_without_an_address_goes_back_to_the_first_step(client):
    html = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"password": PASSWORD,
                                           "csrf_token": csrf_from(html)})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "identifier" in FIELD_RE.findall(page)
    _focused_alert(page, "form-error")


def _mail_from_the_steps(client, email: str = "ada@example.com",
                         query: dict[str, str] | None = None) -> str:
    html = _step(client, email, query).get_data(as_text=True)
    sent = client.post(form_action(html, "/login/email"), data={
        "email": email, "csrf_token": csrf_from(html)})
    assert sent.status_code == 200
    return sent.get_data(as_text=True)


def test_check_your_inbox_takes_the_mails_code(app, client):
    inbox = _mail_from_the_steps(client)
    assert "Check your inbox" in inbox
    code_input = re.search(r'<input[^>]*name="code"[^>]*>', inbox)
    assert code_input
    assert 'inputmode="numeric"' in code_input.group(0)
    assert 'autocomplete="one-time-code"' in code_input.group(0)
    assert "autofocus" in code_input.group(0)
    assert "5 tries left" in inbox
    _ids_are_unique(inbox)
    _, code = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")
    response = client.post(form_action(inbox, "/login/email/code"), data={
        "code": code, "csrf_token": csrf_from(inbox)})
    assert lands_on_account(response)
    account = client.get("/account").get_data(as_text=True)
    assert "ada@example.com" in account and "E-mail" in account


def test_a_wrong_mail_code_says_how_many_tries_are_left_then_offers_a_new_mail(app, client):
    inbox = _mail_from_the_steps(client)
    _, code = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")
    action = form_action(inbox, "/login/email/code")
    for left in (4, 3, 2, 1):
        response = client.post(action, data={"code": wrong_code(code),
                                             "csrf_token": csrf_from(inbox)})
        assert response.status_code == 401
        page = response.get_data(as_text=True)
        assert f"{left} {'try' if left == 1 else 'tries'} left" in page
        tag = _focused_alert(page, "form-status")
        assert 'class="status"' in tag and 'class="error"' not in page
    used_up = client.post(action, data={"code": wrong_code(code),
                                        "csrf_token": csrf_from(inbox)})
    assert used_up.status_code == 429
    page = used_up.get_data(as_text=True)
    assert "no longer works" in page and "Send a new e-mail" in page
    assert form_action(page, "/login/email") == "/login/email"
    # Used up for good: the right code no longer signs in either.
    late = client.post(action, data={"code": code, "csrf_token": csrf_from(inbox)})
    assert late.status_code == 429 and client.get("/account").status_code == 302


def test_a_malformed_mail_code_uses_no_try(client):
    inbox = _mail_from_the_steps(client)
    response = client.post(form_action(inbox, "/login/email/code"), data={
        "code": "12ab", "csrf_token": csrf_from(inbox)})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    _focused_alert(page, "code-error")
    assert "5 tries left" in page


def test_check_your_inbox_without_a_mail_asks_for_one(client):
    response = client.get("/login/email/code")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login/email"


def test_the_inbox_page_counts_down_to_another_mail(client, clock):
    inbox = _mail_from_the_steps(client)
    assert 'data-countdown="30"' in inbox and "Available in" in inbox
    assert 'src="/static/sign_in.js"' in inbox
    clock.travel(31)
    later = client.get("/login/email/code").get_data(as_text=True)
    assert "data-countdown" not in later and "Send a new e-mail" in later


def test_the_mail_code_of_an_app_sign_in_goes_to_the_app(app, client):
    inbox = _mail_from_the_steps(client, query=app_query())
    _, code = last_mail(app.config["OUTBOX_DIR"], "ada@example.com")
    action = form_action(inbox, "/login/email/code")
    assert "handoff=" in action
    params = app_params(client.post(action, data={"code": code,
                                                  "csrf_token": csrf_from(inbox)}))
    assert params["state"] == ["st-123"] and params["code"]


def _texted(client) -> str:
    html = next_step(client, client.get("/login").get_data(as_text=True), PHONE)
    sent = client.post(form_action(html, "/login/sms"), data={
        "phone": PHONE, "csrf_token": csrf_from(html)})
    assert sent.status_code == 303
    return client.get(sent.headers["Location"]).get_data(as_text=True)


def test_the_sms_code_page_shows_tries_left_and_a_resend_countdown(app, client, clock):
    page = _texted(client)
    assert "5 tries left" in page and 'data-countdown="30"' in page
    assert form_action(page, "/login/sms") == "/login/sms"
    _ids_are_unique(page)
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    wrong = client.post(form_action(page, "/login/sms/code"), data={
        "code": wrong_code(code), "csrf_token": csrf_from(page)})
    assert wrong.status_code == 401
    shown = wrong.get_data(as_text=True)
    assert "4 tries left" in shown and 'class="error"' not in shown
    _focused_alert(shown, "form-status")
    clock.travel(31)
    later = client.get("/login/sms/code").get_data(as_text=True)
    assert "data-countdown" not in later
    signed_in = client.post(form_action(later, "/login/sms/code"), data={
        "code": code, "csrf_token": csrf_from(later)})
    assert lands_on_account(signed_in)


def test_used_up_sms_code_says_so_and_offers_a_new_one(app, client):
    page = _texted(client)
    code = last_code(app.config["OUTBOX_DIR"], PHONE)
    for _ in range(5):
        response = client.post(form_action(page, "/login/sms/code"), data={
            "code": wrong_code(code), "csrf_token": csrf_from(page)})
    assert response.status_code == 429
    shown = response.get_data(as_text=True)
    assert "no longer works" in shown and "0 tries left" in shown
    assert "Send a new code" in shown and form_action(shown, "/login/sms") == "/login/sms"
    # The right code now is refused too: the code died with its last try.
    late = client.post(form_action(page, "/login/sms/code"), data={
        "code": code, "csrf_token": csrf_from(page)})
    assert late.status_code == 429 and "no longer works" in late.get_data(as_text=True)
    assert client.get("/account").status_code == 302


def test_the_handoff_rides_on_the_mail_code_page(client):
    html = client.get("/login", query_string=app_query()).get_data(as_text=True)
    attempt = re.search(r"handoff=([\w-]+)", html)
    assert attempt
    step = next_step(client, html, "ada@example.com")
    sent = client.post(form_action(step, "/login/email"), data={
        "email": "ada@example.com", "csrf_token": csrf_from(step)})
    page = sent.get_data(as_text=True)
    assert f"/login/email/code?handoff={attempt.group(1)}" in page
    assert CALLBACK not in page


@pytest.mark.parametrize("config_overrides", [{"SESSION_COOKIE_SECURE": False,
                                               "MAGIC_LINK_VERIFY_LIMIT_PER_IP": "3/minute"}])
def test_codes_typed_on_check_your_inbox_are_limited_per_ip(client):
    inbox = _mail_from_the_steps(client)
    action = form_action(inbox, "/login/email/code")
    statuses = [client.post(action, data={"code": "000000", "csrf_token": csrf_from(inbox)})
                .status_code for _ in range(4)]
    assert statuses[-1] == 429 and 429 not in statuses[:3]
    # Looking at the page again costs nothing.
    assert client.get("/login/email/code").status_code == 200
