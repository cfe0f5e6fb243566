import logging
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from importlib import resources

import pytest
from argon2 import PasswordHasher, Type

from authserver import accounts, passwords, pwned, services
from tests.fakes.pwned_server import FakePwned, sha1_hex

GOOD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return passwords.hash_password(GOOD)


# --- hashing -------------------------------------------------------------------------------


def test_hash_is_argon2id_with_at_least_owasp_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$")
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19_456
    assert int(params["t"]) >= 2
    assert int(params["p"]) >= 1


def test_hashes_are_salted() -> None:
    assert passwords.hash_password(GOOD) != passwords.hash_password(GOOD)


def test_round_trip(stored: str) -> None:
    assert passwords.verify_password(stored, GOOD) is True


def test_wrong_password_is_false(stored: str) -> None:
    assert passwords.verify_password(stored, GOOD + "!") is False
    assert passwords.verify_password(stored, GOOD.upper()) is False
    assert passwords.verify_password(stored, "") is False


def test_none_hash_is_false() -> None:
    assert passwords.verify_password(None, GOOD) is False
    assert passwords.verify_password(None, "") is False


def _median_seconds(fn, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def test_none_hash_takes_about_as_long_as_a_real_verify(stored: str) -> None:
    # Warm up both paths so the one-off dummy-hash computation is not measured.
    passwords.verify_password(None, "warm-up")
    passwords.verify_password(stored, "warm-up")

    real = _median_seconds(lambda: passwords.verify_password(stored, "wrong password"))
    missing = _median_seconds(lambda: passwords.verify_password(None, "wrong password"))

    assert 0.5 <= missing / real <= 2.0, (missing, real)


@pytest.mark.parametrize(
    "bad_hash",
    [
        "",
        "not a hash",
        "$2x$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$argon2id$v=19$m=19456,t=2,p=1$zzz",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$tr\u00fcncated",
        "pbkdf2_sha256$600000$salt$hash",
    ],
)
def test_malformed_or_foreign_hash_is_false_and_logged_without_password(
    bad_hash: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-but-longer"
    with caplog.at_level(logging.WARNING, logger="authserver.passwords"):
        assert passwords.verify_password(bad_hash, secret) is False
    assert caplog.records, "a broken stored hash should be logged"
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert secret not in caplog.text


def test_needs_rehash_false_for_current_parameters(stored: str) -> None:
    assert passwords.needs_rehash(stored) is False


def test_needs_rehash_true_for_weaker_parameters() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1, type=Type.ID)
    old_hash = weak.hash(GOOD)
    # An old hash must still verify, so the caller can upgrade it at this sign-in.
    assert passwords.verify_password(old_hash, GOOD) is True
    assert passwords.needs_rehash(old_hash) is True


def test_needs_rehash_true_for_other_argon2_variant() -> None:
    old_hash = PasswordHasher(
        time_cost=passwords.TIME_COST,
        memory_cost=passwords.MEMORY_COST_KIB,
        parallelism=passwords.PARALLELISM,
        type=Type.I,
    ).hash(GOOD)
    assert passwords.needs_rehash(old_hash) is True


def test_needs_rehash_true_for_foreign_hash() -> None:
    assert passwords.needs_rehash("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW")


# --- normalisation -------------------------------------------------------------------------


def test_normalize_is_nfkc() -> None:
    assert passwords.normalize("\ufb01nancial") == "financial"
    assert passwords.normalize("cafe\u0301") == "caf\u00e9"
    assert passwords.normalize("\uff50\uff41\uff53\uff53") == "pass"


def test_ligature_and_plain_letters_are_the_same_password() -> None:
    h = passwords.hash_password("\ufb01sh and chips forever")
    assert passwords.verify_password(h, "fish and chips forever") is True

    h = passwords.hash_password("fish and chips forever")
    assert passwords.verify_password(h, "\ufb01sh and chips forever") is True


def test_composed_and_decomposed_accents_are_the_same_password() -> None:
    h = passwords.hash_password("caf\u00e9 au lait, s'il vous pla\u00eet")
    assert passwords.verify_password(h, "cafe\u0301 au lait, s'il vous plai\u0302t") is True


# --- policy --------------------------------------------------------------------------------


def test_policy_constants() -> None:
    assert passwords.MIN_LENGTH == 15  # NIST SP 800-63B rev. 4, password as the only factor
    assert passwords.MAX_LENGTH >= 64
    # argon2 never hashes more than 1024 bytes: MAX_LENGTH code points of at most 4 bytes.
    assert passwords.MAX_LENGTH * 4 <= 1024


@pytest.fixture
def min_8() -> Iterator[None]:
    """An app context with PASSWORD_MIN_LENGTH=8, APP_NAME "Example Auth" (no database)."""
    from flask import Flask

    from authserver.config import EXTENSION_KEY, load

    app = Flask(__name__)
    app.extensions[EXTENSION_KEY] = load(
        {"PASSWORD_MIN_LENGTH": 8, "APP_NAME": "Example Auth", "PWNED_PASSWORDS_URL": "",
         "SECRET_KEY": "x" * 32}, "/nonexistent", environ={})
    with app.app_context():
        yield


@pytest.mark.parametrize(
    "pw",
    [
        GOOD,
        "plain words no rules",
        "x7#Kq!2m-V9@pLz3",
        "12345678 and then some",
        "purple elephant dances quietly",
        "my password is not password",  # contains common words, is not one
        "summer in the city of lights",
        "monkey business at noon",
        "qwerty is a keyboard layout",
        "384729103847562",
        "Tr0ub4dor&3 horse",
    ],
)
def test_reasonable_passwords_are_accepted(pw: str) -> None:
    assert passwords.check_policy(pw) is None


@pytest.mark.parametrize("pw", ["", "a", "abc1234", "\U0001f510\U0001f511\U0001f512",
                                "x7#Kq!2m", "fourteen chars"])
def test_short_is_refused(pw: str) -> None:
    assert passwords.check_policy(pw) == ("Use at least 15 characters \N{EM DASH} a few words "
                                          "work well.")


def test_fifteen_characters_are_enough() -> None:
    assert passwords.check_policy("fifteen chars!!") is None
    assert passwords.check_policy("fourteen chars") is not None


def test_the_rule_the_pages_show() -> None:
    assert passwords.rule() == passwords.Rule(
        15, passwords.MAX_LENGTH, "At least 15 characters \N{EM DASH} a few words work well.")


def test_the_minimum_follows_the_setting(min_8: None) -> None:
    assert passwords.min_length() == 8
    assert passwords.rule().min_length == 8 and passwords.rule().text.startswith("At least 8 ")
    assert passwords.check_policy("x7#Kq!2m") is None
    assert passwords.check_policy("x7#Kq!2") == ("Use at least 8 characters \N{EM DASH} a few "
                                                 "words work well.")


def test_length_counts_code_points_after_nfkc(min_8: None) -> None:
    # Eight code points as typed (e + combining accent, four times) but four after NFKC.
    assert passwords.check_policy("e\u0301" * 4) == ("Use at least 8 characters \N{EM DASH} a "
                                                     "few words work well.")
    # Eight emoji are eight code points, whatever their UTF-8 or UTF-16 length.
    assert passwords.check_policy("\U0001f510\U0001f511\U0001f512\U0001f513" * 2) is None


def test_emoji_count_one_each_at_the_default() -> None:
    fifteen = "".join(chr(0x1F400 + n * 7) for n in range(15))
    assert passwords.check_policy(fifteen) is None
    assert passwords.check_policy(fifteen[:14]) is not None


@pytest.mark.parametrize(
    "pw", ["password1", "iloveyou", "ILoveYou", "PASSWORD1", "qwertyuiop", "\uff50assword1"]
)
def test_common_is_refused(pw: str, min_8: None) -> None:
    reason = passwords.check_policy(pw)
    assert reason is not None and "common" in reason


@pytest.mark.parametrize(
    "pw", ["P@ssw0rd!", "Summer2024!", "Password123!", "monkey2023", "p4ssw0rd!!",
           "$ecret123", "Welcome2024#", "January2025!", "winterSummer2024", "dragon1985",
           "passsswoooord", "1Password", "PASSWORD!!!!", "#1Dragon!", "P A S S W O R D 1"]
)
def test_variants_of_common_passwords_are_refused(pw: str, min_8: None) -> None:
    reason = passwords.check_policy(pw)
    assert reason is not None and "common" in reason and "few unrelated words" in reason
    if pw.casefold() not in passwords._load_common_passwords():  # not on the list as typed
        assert reason == passwords.COMMON_VARIANT, pw


def test_variants_are_also_refused_at_the_default_length() -> None:
    for pw in ("P@ssw0rd!2024!!", "Summer2024!!!!!!", "Password12345678", "monkey2023monkey"):
        reason = passwords.check_policy(pw)
        assert reason is not None, pw


@pytest.mark.parametrize(
    "pw", ["qwertyuiop123", "asdfasdfasdf", "1qaz2wsx3edc4rfv", "zxcvbnm,./", "987654321!",
           "abcdefghijklmnop", "qwerty-asdfgh", "12345678901234567", "azertyuiop1234"]
)
def test_keyboard_walks_are_refused(pw: str, min_8: None) -> None:
    reason = passwords.check_policy(pw)
    assert reason is not None and ("keyboard" in reason or "common" in reason), reason


@pytest.mark.parametrize(
    "pw", ["passwordpassword", "hello hello hello", "monkey-monkey-monkey", "a1a1a1a1a1a1",
           "Dragon1Dragon1Dragon1", "xyzxyzxyzxyzxyz"]
)
def test_one_word_or_pattern_repeated_is_refused(pw: str, min_8: None) -> None:
    reason = passwords.check_policy(pw)
    assert reason is not None and ("repeat" in reason or "keyboard" in reason), reason


@pytest.mark.parametrize(
    "pw", ["aaaaaaaaaaaaaaaa", "AAAAAAAAAAAAAAAA", "aAaAaAaAaAaAaAaA", " " * 16,
           "\U0001f600" * 16]
)
def test_one_repeated_character_is_refused(pw: str) -> None:
    assert passwords.check_policy(pw) == passwords.REPEATED_CHARACTER


def test_email_or_local_part_is_refused() -> None:
    email = "Alice.Liddell@example.com"
    for pw in ("alice.liddell@example.com", "ALICE.LIDDELL@EXAMPLE.COM", "alice.liddell2024!",
               "Alice.Liddell!!!", "!!Liddell-1865!!", "4l1ce.l1ddell!!!", "aliceliddell2024"):
        reason = passwords.check_policy(pw, email=email)
        assert reason == passwords.EMAIL_ADDRESS and "e-mail" in reason, pw
    assert passwords.check_policy("alice.liddell2024!", email=None) is None
    assert passwords.check_policy("alice.liddell2024!", email="") is None
    assert passwords.check_policy("alice.liddell-in-wonderland", email=email) is None
    assert passwords.check_policy("bob+work.builder@example.com", email="bob+work.builder@"
                                  "example.com") == passwords.EMAIL_ADDRESS


def test_parts_of_the_local_part_are_refused(min_8: None) -> None:
    email = "ada.lovelace+work@example.com"
    for pw in ("lovelace1815", "Lovelace!!", "ada.lovelace", "1815lovelace", "Work2024!"):
        assert passwords.check_policy(pw, email=email) is not None, pw
    assert passwords.check_policy("lovelace wrote the first program", email=email) is None


def test_the_service_name_is_refused(min_8: None) -> None:
    for pw in ("Example Auth", "exampleauth2024", "ExampleAuth!!", "3x4mple auth 1"):
        reason = passwords.check_policy(pw, email="ada@example.com")
        assert reason == passwords.SERVICE_NAME, pw
        assert "name of this service" in reason
    assert passwords.check_policy("my example auth password is long") is None


def test_the_default_service_name_is_refused(app) -> None:
    assert passwords.check_policy("Authserver2024!!") == passwords.SERVICE_NAME


@pytest.mark.parametrize(
    "pw", [GOOD, "purple elephant dances quietly", "the quick brown fox jumps over it",
           "over the moon and back", "x7#Kq!2m", "Kx9!mQ2#", "correct horse 1"]
)
def test_passphrases_and_random_passwords_pass_at_min_8(pw: str, min_8: None) -> None:
    assert passwords.check_policy(pw, email="alice@example.com") is None


def test_the_minimum_setting_is_checked_at_start(tmp_path) -> None:
    from authserver.config import ConfigError, load

    def minimum(value: object) -> int:
        return load({"PASSWORD_MIN_LENGTH": value}, str(tmp_path),
                    environ={"SECRET_KEY": "x" * 32}).password_min_length

    assert load({}, str(tmp_path), environ={"SECRET_KEY": "x" * 32}).password_min_length == 15
    assert minimum(8) == 8
    assert minimum("64") == 64
    assert minimum(passwords.MAX_LENGTH) == passwords.MAX_LENGTH
    for bad in (7, 0, -1, passwords.MAX_LENGTH + 1, "eight"):
        with pytest.raises(ConfigError, match="PASSWORD_MIN_LENGTH"):
            minimum(bad)


def test_long_passphrase_with_spaces_is_accepted() -> None:
    pw = "the quick brown fox jumps over the lazy dog while it rains today"
    assert len(pw) == 64
    assert passwords.check_policy(pw) is None
    assert passwords.verify_password(passwords.hash_password(pw), pw) is True


def test_unicode_passphrase_is_accepted() -> None:
    # German, Japanese, an emoji and Russian ("parol'"), with spaces.
    pw = (
        "\u00fcber den W\u00f6lken "
        "\u65e5\u672c\u8a9e \U0001f510 "
        "\u043f\u0430\u0440\u043e\u043b\u044c"
    )
    assert passwords.check_policy(pw) is None
    assert passwords.verify_password(passwords.hash_password(pw), pw) is True


def test_max_length_is_accepted_and_longer_is_refused() -> None:
    at_max = ("correct horse battery staple " * 10)[: passwords.MAX_LENGTH]
    assert passwords.check_policy(at_max) is None
    assert passwords.verify_password(passwords.hash_password(at_max), at_max) is True

    too_long = at_max + "k"
    assert passwords.check_policy(too_long) == f"Use at most {passwords.MAX_LENGTH} characters."
    assert passwords.check_policy("xy" * 100_000) == (
        f"Use at most {passwords.MAX_LENGTH} characters."
    )


def test_over_long_password_is_never_hashed_nor_matched() -> None:
    too_long = "z" * (passwords.MAX_LENGTH + 1)
    with pytest.raises(ValueError):
        passwords.hash_password(too_long)
    assert passwords.verify_password(passwords.hash_password(GOOD), too_long) is False


def test_lone_surrogate_is_refused_not_crashing() -> None:
    # json.loads('"\\ud800"') yields such a string, so it can arrive from any client.
    pw = "valid prefix \ud800 suffix"
    assert passwords.check_policy(pw) is not None
    with pytest.raises(ValueError):
        passwords.hash_password(pw)
    assert passwords.verify_password(passwords.hash_password(GOOD), pw) is False
    assert passwords.verify_password(None, pw) is False


# --- the common-password list --------------------------------------------------------------


def test_list_is_shipped_as_package_data_and_well_formed() -> None:
    text = resources.files("authserver").joinpath("data/common-passwords.txt").read_text("utf-8")
    entries = text.splitlines()
    assert len(entries) >= 10_000
    assert len(set(entries)) == len(entries)
    assert all(e and e == e.lower() and e == e.strip() for e in entries)
    assert entries[:2] == ["123456", "password"]
    assert {"password1", "iloveyou"} <= set(entries)


def test_list_loads_once_and_is_shared_between_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_common_passwords", None)
    seen: list[frozenset[str]] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        passwords.check_policy("some unremarkable phrase")
        seen.append(passwords._load_common_passwords())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(seen) == 8
    assert all(s is seen[0] for s in seen)
    assert isinstance(seen[0], frozenset) and len(seen[0]) >= 10_000


# --- breached passwords (Have I Been Pwned range API, against a loopback fake) -------------

BREACHED = "Tr0ub4dor&3 horse"  # passes the local rules; the fake lists it as breached
UNIQUE = "an unremarkable phrase nobody leaked"
BREACHED_DETAIL = ("This password has appeared in a data breach and can't be used. "
                   "Choose a different one.")


@pytest.fixture
def fake_pwned() -> Iterator[FakePwned]:
    with FakePwned() as fake:
        fake.breach(BREACHED, 3_861_493)
        yield fake


@pytest.fixture
def closed_port() -> int:
    """A loopback port that refuses connections (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def breach_check(app, fake_pwned: FakePwned) -> FakePwned:
    """The test app asks the fake (base_config keeps every other test offline)."""
    services.configure(app, PWNED_PASSWORDS_URL=fake_pwned.url, PWNED_PASSWORDS_TIMEOUT=1.0)
    return fake_pwned


def _signup(client, password: str, email: str = "ada@example.com"):
    return client.post("/api/v1/signup", json={"email": email, "password": password})


def test_breached_password_is_refused_through_the_range_api(client, breach_check) -> None:
    response = _signup(client, BREACHED)

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "breached_password"
    assert body["detail"] == BREACHED_DETAIL
    assert "3861493" not in response.get_data(as_text=True)  # NIST: no count
    assert response.mimetype == "application/problem+json"
    assert accounts.by_email("ada@example.com") is None


def test_range_request_carries_only_the_five_character_prefix_and_padding(
        client, breach_check) -> None:
    digest = sha1_hex(BREACHED)

    _signup(client, BREACHED)

    [request] = breach_check.requests
    assert request.path == "/range/" + digest[:5]
    assert digest[5:] not in request.path and BREACHED not in request.path
    assert request.headers["Add-Padding"] == "true"


def test_padding_entry_with_count_zero_is_not_a_breach(client, breach_check) -> None:
    breach_check.pad(UNIQUE)  # its own suffix is in the answer, with count 0

    response = _signup(client, UNIQUE)

    assert response.status_code == 201, response.get_json()
    assert len(breach_check.requests) == 1


def test_unbreached_password_signs_up_and_signs_in_with_the_check_on(
        client, breach_check) -> None:
    assert _signup(client, UNIQUE).status_code == 201
    signin = client.post("/api/v1/signin", json={"email": "ada@example.com",
                                                 "password": UNIQUE})
    assert signin.status_code == 200
    assert len(breach_check.requests) == 1  # sign-in never asks


def test_weak_password_is_refused_before_asking_the_range_api(client, breach_check) -> None:
    response = _signup(client, "password1")

    assert response.status_code == 422 and response.get_json()["code"] == "weak_password"
    assert breach_check.requests == []


def test_password_is_checked_in_its_nfkc_form(client, breach_check) -> None:
    # "ﬁ" (a ligature) hashes and signs in as "fi": the breached "fi…" must be refused too.
    breach_check.breach("fifty shades of grey", 1)

    response = _signup(client, "\ufb01fty shades of grey")

    assert response.status_code == 422 and response.get_json()["code"] == "breached_password"


def test_breach_check_is_off_when_the_url_is_empty(client, fake_pwned) -> None:
    # base_config sets PWNED_PASSWORDS_URL="": nothing leaves the test process.
    assert _signup(client, BREACHED).status_code == 201
    assert fake_pwned.requests == []


def test_breached_password_is_refused_by_the_cli_too(app, runner, breach_check) -> None:
    result = runner.invoke(args=["users", "create", "cli@example.com", "--password-stdin"],
                           input=BREACHED + "\n")

    assert result.exit_code != 0 and "data breach" in result.output
    assert accounts.by_email("cli@example.com") is None


def test_breached_password_is_refused_on_the_signup_page(app, breach_check) -> None:
    from tests.conftest import IsolatedClient
    from tests.web.conftest import csrf_from

    services.configure(app, SESSION_COOKIE_SECURE=False)  # the test client speaks http
    app.test_client_class = IsolatedClient
    browser = app.test_client()
    token = csrf_from(browser.get("/signup").get_data(as_text=True))
    page = browser.post("/signup", data={"email": "web@example.com", "password": BREACHED,
                                         "csrf_token": token})

    assert page.status_code == 422
    assert "appeared in a data breach" in page.get_data(as_text=True)
    assert accounts.by_email("web@example.com") is None


def test_unreachable_range_api_fails_open_by_default_and_is_logged(
        app, client, closed_port, caplog) -> None:
    services.configure(app, PWNED_PASSWORDS_URL=f"http://127.0.0.1:{closed_port}/range/")
    caplog.set_level(logging.WARNING, logger="authserver.pwned")

    response = _signup(client, BREACHED)

    assert response.status_code == 201
    [record] = [r for r in caplog.records if r.name == "authserver.pwned"]
    assert record.levelno == logging.WARNING and "PWNED_PASSWORDS_FAIL=open" in record.message
    assert BREACHED not in caplog.text and sha1_hex(BREACHED)[:5] not in caplog.text


def test_unreachable_range_api_fails_closed_with_503_when_configured(
        app, client, closed_port) -> None:
    services.configure(app, PWNED_PASSWORDS_URL=f"http://127.0.0.1:{closed_port}/range/",
                       PWNED_PASSWORDS_FAIL="closed")

    response = _signup(client, UNIQUE)

    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == "service_unavailable" and "breach" in body["detail"]
    assert response.headers["Retry-After"]
    assert accounts.by_email("ada@example.com") is None


def test_slow_range_api_is_cut_off_by_the_timeout(app, client, breach_check) -> None:
    services.configure(app, PWNED_PASSWORDS_FAIL="closed", PWNED_PASSWORDS_TIMEOUT=0.3)
    breach_check.delay = 2.0

    start = time.monotonic()
    response = _signup(client, UNIQUE)

    assert response.status_code == 503
    assert time.monotonic() - start < 1.5


@pytest.mark.parametrize("failure", [
    {"status": 500},
    {"status": 429},
    {"body": b"<html><body>Sorry, you have been blocked</body></html>"},
    {"body": b""},
    {"body": b"\xff\xfe not ascii"},
    {"body": b"0" * (2 * 1024 * 1024)},
])
def test_range_api_errors_and_foreign_answers_count_as_unreachable(
        app, client, breach_check, failure) -> None:
    services.configure(app, PWNED_PASSWORDS_FAIL="closed")
    for name, value in failure.items():
        setattr(breach_check, name, value)

    response = _signup(client, BREACHED)

    assert response.status_code == 503 and response.get_json()["code"] == "service_unavailable"


def test_range_answer_parsing_matches_the_real_format() -> None:
    digest = sha1_hex(BREACHED)
    body = ("\r\n".join([f"{digest[5:]}:12", "0018A45C4D1DEF81644B54AB7F969B88D65:0",
                         "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2"])).encode()
    assert pwned._count(body, digest[5:]) == 12
    assert pwned._count(body.replace(b":12", b":0"), digest[5:]) == 0  # padding
    assert pwned._count(body.lower(), digest[5:]) == 12  # hex case doesn't matter
    assert pwned._count(body, "F" * 35) == 0
    with pytest.raises(pwned.PwnedUnavailable):
        pwned._count(body + b"\r\nnot-a-line", digest[5:])


def test_breach_check_settings_are_checked_at_start(tmp_path) -> None:
    from authserver.config import ConfigError, load

    def settings_from(environ: dict[str, str]):
        return load({}, str(tmp_path), environ={"SECRET_KEY": "x" * 32, **environ})

    assert settings_from({}).pwned_passwords_url == "https://api.pwnedpasswords.com/range/"
    assert settings_from({}).pwned_passwords_fail == "open"
    assert settings_from({}).pwned_passwords_timeout == 2.0
    # An empty variable turns the check off (it does not fall back to the default).
    assert settings_from({"PWNED_PASSWORDS_URL": ""}).pwned_passwords_url == ""
    assert settings_from({"PWNED_PASSWORDS_URL": "https://mirror.example/range"}
                         ).pwned_passwords_url == "https://mirror.example/range/"
    for bad in ({"PWNED_PASSWORDS_URL": "http://mirror.example/range/"},
                {"PWNED_PASSWORDS_URL": "ftp://mirror.example/"},
                {"PWNED_PASSWORDS_URL": "https://mirror.example/range/?x=1"},
                {"PWNED_PASSWORDS_FAIL": "maybe"},
                {"PWNED_PASSWORDS_TIMEOUT": "0"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            settings_from(bad)
