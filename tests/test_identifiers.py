"""E-mail addresses: one address, one mailbox, one account.

Encoded-words and other text a mail library decodes or rewrites are refused (they were stored
as their own account but delivered to another mailbox, past its cooldown and limits); local
parts that NFKC would change are refused (they opened a second account that looks like the
first); the domain keeps its IDNA folding. Mail headers are built from the validated parts.
"""

from __future__ import annotations

import pytest

from authserver import accounts
from authserver.errors import Problem
from authserver.identifiers import lookalike_key, normalize_email
from authserver.senders import RecipientRejected, build_email_sender
from tests.conftest import PASSWORD
from tests.fakes.smtp_server import FakeSmtp
from tests.flows.magic_helpers import email_messages

# Each one either decodes to / is delivered as another address, injects a header, or hides
# structure from the person reading it. Through the API every one answers 422, never 500.
HOSTILE_ADDRESSES = [
    "=?utf-8?q?ada?=@example.com",                    # RFC 2047 Q: delivered to ada@
    "=?utf-8?b?YWRh?=@example.com",                   # RFC 2047 B: was a 500
    "=?iso-8859-1?q?ada?=@example.com",
    "=?UTF-8?Q?ada?=@example.com",
    "ada=?utf-8?q?x?=@example.com",
    "ada@=?utf-8?q?example.com?=",
    '"ada"@example.com',                               # quoted local part
    '"ada@example.com"@evil.example',
    '"a b"@example.com',
    "ada(comment)@example.com",                        # comments
    "(x)ada@example.com",
    "Ada <ada@example.com>",                           # display name and angle brackets
    "<ada@example.com>",
    "ada@example.com, eve@evil.example",               # lists
    "ada@example.com;eve@evil.example",
    "group: ada@example.com;",
    "ada@[127.0.0.1]",                                 # domain literal
    "ada\\@example.com",
    "ada@example.com\r\nBcc: eve@evil.example",        # header injection
    "ada\r\n@example.com",
    "ada\n@example.com",
    "ad\ta@example.com",
    "ad\x7fa@example.com",
    "ad a@example.com",
    "a\u200bda@example.com",                           # zero-width space
    "a\u200dda@example.com",                           # zero-width joiner
    "a\u202eda@example.com",                           # right-to-left override
    "a\u00adda@example.com",                           # soft hyphen
    "ada\u2028@example.com",                           # line separator
]


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_address_is_refused_with_422_at_signup(client, address):
    response = client.post("/api/v1/signup", json={"email": address, "password": PASSWORD})

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "invalid_email"


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_address_is_refused_with_422_at_magic_link_request(app, client, address):
    response = client.post("/api/v1/magic-link/request", json={"email": address})

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "invalid_email"
    assert email_messages(app.config["OUTBOX_DIR"]) == []


def test_encoded_word_cannot_reach_a_mailbox_past_its_cooldown(app, client):
    """The red-team reproduction: mail to ada@ again, under another spelling, at once."""
    first = client.post("/api/v1/magic-link/request", json={"email": "ada@example.com"})
    assert first.status_code == 202
    for spelling in ("=?utf-8?q?ada?=@example.com", "=?utf-8?b?YWRh?=@example.com"):
        again = client.post("/api/v1/magic-link/request", json={"email": spelling})
        assert again.status_code == 422
    assert len(email_messages(app.config["OUTBOX_DIR"])) == 1


def test_smtp_headers_and_envelope_are_built_from_the_validated_address():
    with FakeSmtp() as smtp:
        sender = build_email_sender({"EMAIL_BACKEND": "smtp", "SMTP_HOST": smtp.host,
                                     "SMTP_PORT": smtp.port,
                                     "MAIL_FROM": "Auth <no-reply@auth.example>"})
        message = sender.build_message("ada@exämple.com", "Hi", "text", None)  # type: ignore[attr-defined]
        [to] = message["To"].addresses
        assert (to.username, to.domain, to.display_name) == ("ada", "exämple.com", "")

        sender.send("ada+tag@example.com", "Hi", "text", None)
        [received] = smtp.wait_for(1)
        assert received["To"] == "ada+tag@example.com"
        assert smtp.envelopes[0].rcpt_tos == ["ada+tag@example.com"]

        # Defence in depth: the sender refuses what it would have decoded to another mailbox.
        for address in ("=?utf-8?q?ada?=@example.com", "=?utf-8?b?YWRh?=@example.com",
                        "Ada <ada@example.com>", "ada@example.com\r\nBcc: e@evil.example",
                        "a,b@example.com", "no-at-sign"):
            with pytest.raises(RecipientRejected):
                sender.send(address, "Hi", "text", None)
        assert len(smtp.envelopes) == 1


# --- look-alike local parts ----------------------------------------------------------------

# (variant of ada@example.com or of a digit address, what it imitates) — NFKC changes each.
LOOKALIKES = [
    ("\uff41da@example.com", "fullwidth a"),
    ("\uff21DA@example.com", "fullwidth capital A"),
    ("\uff41\uff44\uff41@example.com", "all fullwidth"),
    ("a\ufb01@example.com", "ligature fi"),
    ("\ufb00ada@example.com", "ligature ff"),
    ("\ufb06ada@example.com", "ligature st"),
    ("ada\u00b2@example.com", "superscript two"),
    ("ada\u2082@example.com", "subscript two"),
    ("ada\u2460@example.com", "circled digit one"),
    ("ada\u2474@example.com", "parenthesized digit one"),
    ("ada\U0001d7ce@example.com", "mathematical bold digit zero"),
    ("ada\uff11@example.com", "fullwidth digit one"),
    ("\U0001d41a\U0001d41d\U0001d41a@example.com", "mathematical bold ada"),
    ("\U0001d44e\U0001d451\U0001d44e@example.com", "mathematical italic ada"),
    ("\U0001d4ea\U0001d4ed\U0001d4ea@example.com", "mathematical bold script ada"),
    ("\U0001d552\U0001d555\U0001d552@example.com", "mathematical double-struck ada"),
    ("\U0001d68a\U0001d68d\U0001d68a@example.com", "mathematical monospace ada"),
    ("\u24d0da@example.com", "circled latin small a"),
    ("\u1d43da@example.com", "modifier letter small a"),
    ("\u00aada@example.com", "feminine ordinal indicator (superscript a)"),
    ("ad\u2090@example.com", "latin subscript small a"),
    ("\u2170da@example.com", "small roman numeral one"),
    ("ada\u2024x@example.com", "one dot leader"),
    ("\u3371da@example.com", "square hpa"),
    ("\u017fada@example.com", "long s"),
]
INVISIBLES = [
    ("a\u200dda@example.com", "zero-width joiner"),
    ("a\u200cda@example.com", "zero-width non-joiner"),
    ("a\u2060da@example.com", "word joiner"),
    ("\ufeffada@example.com", "byte order mark"),
]


@pytest.mark.parametrize(("address", "kind"), LOOKALIKES + INVISIBLES)
def test_lookalike_local_part_is_refused_beside_the_real_account(client, signup, address, kind):
    signup("ada@example.com")

    response = client.post("/api/v1/signup", json={"email": address, "password": PASSWORD})

    assert response.status_code == 422, (kind, response.get_json())
    assert response.get_json()["code"] == "invalid_email"
    link = client.post("/api/v1/magic-link/request", json={"email": address})
    assert link.status_code == 422, kind


def test_lookalike_message_says_what_is_wrong(client):
    response = client.post("/api/v1/signup", json={"email": "\uff41da@example.com",
                                                   "password": PASSWORD})
    assert "look-alike characters" in response.get_json()["detail"]


@pytest.mark.parametrize("address", [
    "ada@example.com", "Ada.Lovelace+tag@example.com", "o'brien@example.com",
    "j\u00f6rg@example.com", "\u00e9l\u00e8ve@example.com", "\u7528\u6237@example.com",
    "\u0438\u0432\u0430\u043d@example.com", "stra\u00dfe@example.com",
])
def test_ordinary_unicode_and_ascii_addresses_are_still_accepted(client, address):
    response = client.post("/api/v1/signup", json={"email": address, "password": PASSWORD})
    assert response.status_code == 201, response.get_json()


def test_composed_and_decomposed_accents_are_one_account(client, signup):
    signup("\u00e9le@example.com")
    again = client.post("/api/v1/signup", json={"email": "e\u0301le@example.com",
                                                "password": PASSWORD})
    assert again.status_code == 409


def test_idna_domain_spellings_stay_one_account(client, signup):
    created = signup("ada@ex\u00e4mple.com")["user"]
    assert created["email"] == "ada@ex\u00e4mple.com"
    for spelling in ("ada@xn--exmple-cua.com", "ADA@EX\u00c4MPLE.COM", "ada@ex\u00e4mple.com"):
        again = client.post("/api/v1/signup", json={"email": spelling, "password": PASSWORD})
        assert again.status_code == 409, spelling
        signin = client.post("/api/v1/signin", json={"email": spelling, "password": PASSWORD})
        assert signin.status_code == 200 and signin.get_json()["user"]["id"] == created["id"]


def test_fullwidth_domain_folds_to_the_same_account(client, signup):
    # Domains are folded by IDNA (UTS 46), so this is the same account, not a look-alike.
    created = signup("ada@example.com")["user"]
    signin = client.post("/api/v1/signin", json={"email": "ada@\uff45xample.com",
                                                 "password": PASSWORD})
    assert signin.status_code == 200 and signin.get_json()["user"]["id"] == created["id"]


def test_normalize_email_refuses_without_calling_it_a_server_error():
    # NUL never gets this far over HTTP (the body layer answers 400), but callers like the
    # CLI reach normalize_email directly.
    for address in HOSTILE_ADDRESSES + ["ad\x00a@example.com"] + [
            a for a, _ in LOOKALIKES + INVISIBLES]:
        with pytest.raises(Problem) as caught:
            normalize_email(address)
        assert (caught.value.status, caught.value.code) == (422, "invalid_email"), address


# --- flask users check-lookalikes ----------------------------------------------------------

def test_check_lookalikes_reports_none_on_a_clean_database(app, runner, signup):
    signup("ada@example.com")
    signup("bob@ex\u00e4mple.com")

    result = runner.invoke(args=["users", "check-lookalikes"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no look-alike addresses"


def test_check_lookalikes_lists_refused_and_colliding_accounts(app, runner, signup):
    real = signup("ada@example.com")["user"]
    # Made before the rules existed (inserted directly, as an older version stored them).
    fullwidth = accounts.create(email="\uff41da@example.com")
    joiner = accounts.create(email="a\u200dda@example.com")
    encoded = accounts.create(email="=?utf-8?q?bob?=@example.com")
    unrelated = accounts.create(email="carol@example.com")

    result = runner.invoke(args=["users", "check-lookalikes"])

    assert result.exit_code == 1, result.output
    out = result.output
    for user in (fullwidth, joiner, encoded):
        assert f"refused   {user.id}" in out
    assert "look-alike characters" in out
    collision = next(line for line in out.splitlines() if line.startswith("collision"))
    assert real["id"] in collision and fullwidth.id in collision and joiner.id in collision
    assert unrelated.id not in out and encoded.id not in collision

    # The listed accounts can still be found by their stored address, to be disabled.
    disabled = runner.invoke(args=["users", "disable", "\uff41da@example.com"])
    assert disabled.exit_code == 0, disabled.output
    assert accounts.get(fullwidth.id).disabled


def test_lookalike_key_folds_compatibility_case_and_invisibles():
    assert lookalike_key("\uff41DA@Example.com") == lookalike_key("ada@example.com")
    assert lookalike_key("a\u200dda@example.com") == lookalike_key("ada@example.com")
    assert lookalike_key("ada@xn--exmple-cua.com") == lookalike_key("ada@ex\u00e4mple.com")
    assert lookalike_key("ada@example.com") != lookalike_key("ada@exampie.com")
