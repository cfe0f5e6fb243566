"""Issue 10 over real HTTP: gunicorn (2 workers x 4 threads) on MySQL, a hung SMTP server and
a Twilio that takes a text and then never answers.

The mail server takes each message whole and then never answers. Before the send gate, a
dozen mail requests took every thread for the whole SMTP_TIMEOUT and token checks queued
behind them. Now each worker lets one send (SEND_CONCURRENCY=1) wait on the server; the
other mail requests answer 503 at once, token checks stay fast, and the mails that did
reach the server answer 202 (handed over, answer lost) with a code that signs in. The same
holds for texts, through the real twilio SDK against a loopback fake of Twilio's API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.fakes.smtp_server import FakeSmtp
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from tests.flows.magic_helpers import code_in, parts_of

PASSWORD = "correct horse battery staple"
SMTP_TIMEOUT = 6.0
MAIL_REQUESTS = 12


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def _timed(method: str, url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - started


def test_hung_mail_server_takes_no_thread_beyond_the_cap(live_server: Any,
                                                         smtp: FakeSmtp) -> None:
    server = live_server(EMAIL_BACKEND="smtp", SMTP_HOST=smtp.host, SMTP_PORT=smtp.port,
                         SMTP_TIMEOUT=SMTP_TIMEOUT, SEND_CONCURRENCY=1,
                         MAGIC_LINK_LIMIT_PER_IP_HOUR="100/hour")
    base = server.url + "/api/v1"
    signed_up = requests.post(base + "/signup", json={"email": "lin@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    auth = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
    smtp.wait_for(1)  # the sign-up's verification mail, before the server hangs
    before = len(smtp.messages)

    smtp.hang_after_data = 60
    with ThreadPoolExecutor(MAIL_REQUESTS) as pool:
        mails = [pool.submit(_timed, "POST", base + "/magic-link/request",
                             json={"email": f"user{i}@example.com"})
                 for i in range(MAIL_REQUESTS)]
        time.sleep(0.5)  # the mail requests are in, the capped ones hang on the server
        checks = [_timed("GET", base + "/isAuthenticated", headers=auth) for _ in range(5)]
        answers = [future.result() for future in mails]

    assert all(r.status_code == 200 for r, _ in checks), [r.text for r, _ in checks]
    assert max(elapsed for _, elapsed in checks) < 1.5, checks

    sent = [(r, elapsed) for r, elapsed in answers if r.status_code == 202]
    busy = [(r, elapsed) for r, elapsed in answers if r.status_code == 503]
    assert len(sent) + len(busy) == MAIL_REQUESTS, [r.text for r, _ in answers]
    assert 1 <= len(sent) <= 2  # one slot per worker
    # The refused ones never reached the server.
    assert len(smtp.messages) - before == len(sent)
    assert all(r.json()["code"] == "service_unavailable" and int(r.headers["Retry-After"]) > 0
               for r, _ in busy)
    assert max(elapsed for _, elapsed in busy) < SMTP_TIMEOUT / 2, busy

    # A mail the server took, answer lost: its code signs in (nothing was deleted).
    recipient = smtp.envelopes[before].rcpt_tos[0]
    code = code_in(parts_of(smtp.messages[before])[0])
    signed_in = requests.post(base + "/magic-link/verify",
                              json={"email": recipient, "code": code}, timeout=10)
    assert signed_in.status_code == 200, signed_in.text


SMS_TIMEOUT = 4.0
TEXT_REQUESTS = 10


def test_twilio_that_takes_texts_and_hangs_costs_no_500_and_no_sign_in(
        live_server: Any, twilio: FakeTwilio) -> None:
    server = live_server(SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                         TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_FROM_NUMBER=FROM_NUMBER,
                         TWILIO_API_BASE_URL=twilio.url, SMS_PROVIDER_TIMEOUT=SMS_TIMEOUT,
                         SEND_CONCURRENCY=1, OTP_LIMIT_PER_IP_HOUR="100/hour")
    base = server.url + "/api/v1"
    signed_up = requests.post(base + "/signup", json={"email": "ode@example.com",
                                                      "password": PASSWORD}, timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    auth = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}

    twilio.hang_next(60, times=TEXT_REQUESTS)  # takes each text, then never answers
    phones = [f"+1650253{1000 + i}" for i in range(TEXT_REQUESTS)]
    with ThreadPoolExecutor(TEXT_REQUESTS) as pool:
        texts = [pool.submit(_timed, "POST", base + "/otp/request", json={"phone": phone})
                 for phone in phones]
        time.sleep(0.5)  # the text requests are in, the capped ones hang on Twilio
        checks = [_timed("GET", base + "/isAuthenticated", headers=auth) for _ in range(5)]
        answers = [future.result() for future in texts]

    assert all(r.status_code == 200 for r, _ in checks), [r.text for r, _ in checks]
    assert max(elapsed for _, elapsed in checks) < 1.5, checks
    assert not [r.text for r, _ in answers if r.status_code >= 500 and r.status_code != 503]
    sent = [(r, elapsed) for r, elapsed in answers if r.status_code == 202]
    busy = [(r, elapsed) for r, elapsed in answers if r.status_code == 503]
    assert len(sent) + len(busy) == TEXT_REQUESTS, [r.text for r, _ in answers]
    assert 1 <= len(sent) <= 2  # one slot per worker; each answered after the timeout
    assert len(twilio.messages) == len(sent)  # the refused ones never reached Twilio
    assert all(r.json()["code"] == "service_unavailable" and int(r.headers["Retry-After"]) > 0
               for r, _ in busy)
    assert max(elapsed for _, elapsed in busy) < SMS_TIMEOUT / 2, busy

    # A text Twilio took, answer lost: the code works, and the cooldown holds (no second
    # paid text for that phone).
    message = twilio.messages[0]
    phone, body = message.form["To"], message.form["Body"]
    again = requests.post(base + "/otp/request", json={"phone": phone}, timeout=10)
    assert again.status_code == 429, again.text
    code = body.split("code is ", 1)[1][:6]
    signed_in = requests.post(base + "/otp/verify", json={"phone": phone, "code": code},
                              timeout=10)
    assert signed_in.status_code == 200, signed_in.text

