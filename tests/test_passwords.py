import logging
import statistics
import threading
import time
from importlib import resources

import pytest
from argon2 import PasswordHasher, Type

from authserver import passwords

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
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
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
    assert passwords.MIN_LENGTH == 8
    assert passwords.MAX_LENGTH >= 64


@pytest.mark.parametrize(
    "pw",
    [
        GOOD,
        "plain words no rules",
        "x7#Kq!2m",
        "12345678 and then some",
    ],
)
def test_reasonable_passwords_are_accepted(pw: str) -> None:
    assert passwords.check_policy(pw) is None


@pytest.mark.parametrize("pw", ["", "a", "abc1234", "\U0001f510\U0001f511\U0001f512"])
def test_short_is_refused(pw: str) -> None:
    assert passwords.check_policy(pw) == "Use at least 8 characters."


def test_length_counts_code_points_after_nfkc() -> None:
    # Eight code points as typed (e + combining accent, four times) but four after NFKC.
    assert passwords.check_policy("e\u0301" * 4) == "Use at least 8 characters."
    # Eight emoji are eight code points, whatever their UTF-8 or UTF-16 length.
    assert passwords.check_policy("\U0001f510\U0001f511\U0001f512\U0001f513" * 2) is None


@pytest.mark.parametrize(
    "pw", ["password1", "iloveyou", "ILoveYou", "PASSWORD1", "qwertyuiop", "\uff50assword1"]
)
def test_common_is_refused(pw: str) -> None:
    reason = passwords.check_policy(pw)
    assert reason is not None and "common" in reason


@pytest.mark.parametrize(
    "pw", ["aaaaaaaa", "AAAAAAAAAAAA", "aAaAaAaA", "        ", "\U0001f600" * 10]
)
def test_one_repeated_character_is_refused(pw: str) -> None:
    assert passwords.check_policy(pw) is not None


def test_email_or_local_part_is_refused() -> None:
    email = "Alice.Liddell@example.com"
    for pw in ("alice.liddell@example.com", "ALICE.LIDDELL@EXAMPLE.COM", "alice.liddell"):
        reason = passwords.check_policy(pw, email=email)
        assert reason is not None and "e-mail" in reason, pw
    assert passwords.check_policy("alice.liddell", email=None) is None
    assert passwords.check_policy("alice.liddell", email="") is None
    assert passwords.check_policy("alice.liddell-in-wonderland", email=email) is None


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
    at_max = ("abcdefghij" * 30)[: passwords.MAX_LENGTH]
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
