"""Imported bcrypt hashes (from the Node AuthService): verified as Node did, never made, and
replaced by argon2id when a sign-in has checked the whole password."""

from __future__ import annotations

import logging
import time

import pytest

from authserver import passwords
from tests.seed_source import bcrypt_hash

OLD = "my old node password"


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_variants_verify(prefix: str) -> None:
    stored = bcrypt_hash(OLD, prefix)
    assert passwords.is_bcrypt(stored)
    assert passwords.verify_password(stored, OLD) is True
    assert passwords.verify_password(stored, OLD + "!") is False
    assert passwords.verify_password(stored, OLD.upper()) is False
    assert passwords.verify_password(stored, "") is False


@pytest.mark.parametrize("stored", [
    "$2x$04$" + "a" * 53,            # crypt_blowfish's buggy-mode marker
    "$2b$03$" + "a" * 53,            # cost below bcrypt's minimum
    "$2b$04$" + "a" * 52,            # truncated
    "$2b$04$" + "a" * 52 + "!",      # outside bcrypt's alphabet
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    "sha256$abc",
    None,
])
def test_only_well_formed_bcrypt_hashes_are_bcrypt(stored: str | None) -> None:
    assert not passwords.is_bcrypt(stored)


def test_a_bcrypt_hash_always_needs_a_rehash() -> None:
    assert passwords.needs_rehash(bcrypt_hash(OLD)) is True


def test_upgraded_hash_is_argon2id_of_the_password() -> None:
    upgraded = passwords.upgraded_hash(bcrypt_hash(OLD), OLD)
    assert upgraded is not None and upgraded.startswith("$argon2id$")
    assert passwords.verify_password(upgraded, OLD)
    assert not passwords.needs_rehash(upgraded)
    assert passwords.upgraded_hash(upgraded, OLD) is None  # current argon2: stays


def test_node_checked_the_password_as_typed_not_normalised() -> None:
    # "ﬁ" (U+FB01) is NFKC "fi": Node hashed the ligature itself.
    typed = "ﬁne old password"
    stored = bcrypt_hash(typed)
    assert passwords.verify_password(stored, typed)
    assert not passwords.verify_password(stored, "fine old password")
    # Once upgraded, the house's normalisation applies as for every argon2id hash.
    upgraded = passwords.upgraded_hash(stored, typed)
    assert upgraded is not None and passwords.verify_password(upgraded, "fine old password")


def test_long_passwords_match_as_node_cut_them_and_keep_their_bcrypt_hash() -> None:
    long_password = "a passphrase that is a good deal longer than seventy-two bytes, on purpose!"
    assert len(long_password.encode()) > passwords.BCRYPT_MAX_BYTES
    stored = bcrypt_hash(long_password)  # Node hashed its first 72 bytes
    assert passwords.verify_password(stored, long_password)
    # Only the first 72 bytes were ever checked (by Node too): what follows them is not.
    altered = long_password[:72] + " something else"
    assert passwords.verify_password(stored, altered)
    assert not passwords.verify_password(stored, long_password[:71])
    # So no sign-in pins the text past byte 72 as the password: the bcrypt hash stays.
    assert passwords.upgraded_hash(stored, altered) is None
    assert passwords.upgraded_hash(stored, long_password) is None
    assert passwords.upgraded_hash(stored, long_password[:72]) is None  # 72 bytes: may be a cut


def test_a_shorter_password_is_checked_in_full() -> None:
    # Under 72 bytes bcrypt hashes the terminating NUL too: nothing longer shares the hash.
    short = "x" * 71
    stored = bcrypt_hash(short)
    assert passwords.verify_password(stored, short)
    assert not passwords.verify_password(stored, short + "y")
    assert passwords.upgraded_hash(stored, short) is not None


def test_multibyte_passwords_count_bytes_not_characters() -> None:
    # 30 "é" are 60 bytes (checked in full); 40 are 80 (cut at 72 by Node).
    assert passwords.upgraded_hash(bcrypt_hash("é" * 30), "é" * 30) is not None
    stored = bcrypt_hash("é" * 40)
    assert passwords.verify_password(stored, "é" * 40)
    assert passwords.upgraded_hash(stored, "é" * 40) is None


@pytest.mark.parametrize("typed", ["nul\x00byte password", "lone \ud800 surrogate", "x" * 2000])
def test_unusable_input_never_matches_and_never_raises(typed: str) -> None:
    stored = bcrypt_hash(typed.split("\x00")[0] if "\x00" in typed else "nul")
    assert passwords.verify_password(stored, typed) is False


def test_a_hash_bcrypt_refuses_is_a_mismatch_logged_without_the_hash(
        caplog: pytest.LogCaptureFixture) -> None:
    # Well-formed to the pattern, but a salt bcrypt refuses ("Invalid salt").
    stored = "$2b$04$" + "z" * 53
    assert passwords.is_bcrypt(stored)
    with caplog.at_level(logging.WARNING, logger="authserver.passwords"):
        assert passwords.verify_password(stored, OLD) is False
    assert "bcrypt hash could not be verified" in caplog.text
    assert stored not in caplog.text and "z" * 20 not in caplog.text


def test_a_cost_past_the_bound_is_refused_without_doing_the_work() -> None:
    # Cost 31 would take this machine about four days to check.
    stored = "$2b$31$" + "." * 53
    assert passwords.bcrypt_cost(stored) == 31
    assert not passwords.is_bcrypt(stored)
    started = time.perf_counter()
    assert passwords.verify_password(stored, OLD) is False
    assert time.perf_counter() - started < 2
    assert passwords.bcrypt_cost("$2b$14$" + "." * 53) == passwords.BCRYPT_MAX_COST
    assert passwords.is_bcrypt("$2b$14$" + "." * 53)
