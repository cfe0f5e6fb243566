"""Phone numbers: any common notation to E.164, and the checks before we pay for a text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from authserver import create_app, phones
from authserver.errors import Problem
from authserver.services import configure
from tests.conftest import base_config


@pytest.fixture
def app_ctx(tmp_path: Any) -> Iterator[Any]:
    """An app context for the settings; no database is touched."""
    app = create_app(base_config(tmp_path, "sqlite:///" + str(tmp_path / "unused.db")))
    with app.app_context():
        yield app


def _problem(func: Any, *args: Any, **kwargs: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        func(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize("raw", [
    "(650) 253-0000", "650-253-0000", "650.253.0000", "6502530000", "1 650 253 0000",
    "+1 (650) 253-0000", "+16502530000", "  +1 650 253 0000  ", "011 1 650 253 0000",
    "tel:+1-650-253-0000",
])
def test_common_notations_normalise_to_e164(app_ctx: Any, raw: str) -> None:
    assert phones.parse_phone(raw) == "+16502530000"
    phone = phones.sms_phone(raw)
    assert phone == phones.Phone(e164="+16502530000", region="US", calling_code=1)


def test_default_region_applies_to_numbers_without_plus(app_ctx: Any) -> None:
    assert phones.parse_phone("06 12 34 56 78", default_region="FR") == "+33612345678"
    assert phones.sms_phone("06 12 34 56 78", default_region="fr").region == "FR"
    configure(app_ctx, PHONE_DEFAULT_REGION="GB")
    assert phones.parse_phone("07400 123456") == "+447400123456"


def test_foreign_mobile_numbers_are_accepted(app_ctx: Any) -> None:
    phone = phones.sms_phone("+33 6 12 34 56 78")
    assert (phone.e164, phone.region, phone.calling_code) == ("+33612345678", "FR", 33)


@pytest.mark.parametrize("raw", [
    "", "   ", "12", "hello", "+1 555 000 1111", "+1 650 253 0000 ext. 12",
    "+" + "1" * 70, "+999 123 456",
])
def test_invalid_numbers_are_422_invalid_phone(app_ctx: Any, raw: str) -> None:
    problem = _problem(phones.sms_phone, raw)
    assert (problem.status, problem.code, problem.field) == (422, "invalid_phone", "phone")


@pytest.mark.parametrize("raw", [None, 6502530000, ["+16502530000"]])
def test_non_strings_are_invalid_phone(app_ctx: Any, raw: Any) -> None:
    assert _problem(phones.parse_phone, raw).code == "invalid_phone"


@pytest.mark.parametrize("raw", [
    "+44 20 7946 0000",   # UK fixed line
    "+49 30 123456",      # Berlin fixed line
    "+1 900 555 0123",    # US premium rate: a classic SMS-pumping target
    "+1 800 555 0123",    # US toll free
])
def test_numbers_that_cannot_take_a_text_are_refused(app_ctx: Any, raw: str) -> None:
    # Readable as numbers (look-ups work) but never texted.
    assert phones.parse_phone(raw).startswith("+")
    problem = _problem(phones.sms_phone, raw)
    assert (problem.status, problem.code) == (422, "invalid_phone")
    assert "mobile" in problem.detail


def test_country_allow_list(app_ctx: Any) -> None:
    configure(app_ctx, SMS_ALLOWED_COUNTRIES=["us", "CA"])
    assert phones.sms_phone("(650) 253-0000").region == "US"
    assert phones.sms_phone("+1 416 555 0123").region == "CA"
    problem = _problem(phones.sms_phone, "+33 6 12 34 56 78")
    assert (problem.status, problem.code) == (422, "phone_country_not_allowed")
    # An explicit list wins over the setting.
    assert phones.sms_phone("+33612345678", allowed_countries=["FR"]).region == "FR"
    assert _problem(phones.sms_phone, "(650) 253-0000",
                    allowed_countries=["FR"]).code == "phone_country_not_allowed"


def test_invalid_number_outside_allowed_countries_is_invalid_phone(app_ctx: Any) -> None:
    configure(app_ctx, SMS_ALLOWED_COUNTRIES=["FR"])
    assert _problem(phones.sms_phone, "+1 555 000 1111").code == "invalid_phone"


def test_test_numbers_skip_the_checks(app_ctx: Any) -> None:
    configure(app_ctx, SMS_ALLOWED_COUNTRIES=["FR"])
    # 555-000-1111 is not a real US number, which is why it makes a good test number.
    phone = phones.sms_phone("(555) 000-1111", test_numbers={"+15550001111"})
    assert phone.e164 == "+15550001111"
    assert _problem(phones.sms_phone, "(555) 000-1111").code == "invalid_phone"


def test_normalize_test_numbers() -> None:
    assert phones.normalize_test_numbers({"+1 (555) 000-1111": "123456", "5550002222": "654321"},
                                         "US") == {"+15550001111": "123456",
                                                   "+15550002222": "654321"}
    with pytest.raises(ValueError, match="SMS_TEST_NUMBERS"):
        phones.normalize_test_numbers({"not-a-number": "123456"}, "US")


def test_mask_keeps_country_code_and_last_digits_only() -> None:
    assert phones.mask("+16502530000") == "+1********00"
    assert "253" not in phones.mask("+16502530000")
    assert phones.mask("+1") == "+***"


# -- SMS pumping defaults --------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    "+881 6 1234 5678",   # Iridium / GMSS satellite (valid mobile for phonenumbers)
    "+882 16 123 456",    # international networks (VOIP)
    "+870 773 123 456",   # Inmarsat
    "+883 5100 1234 5",   # international networks (VOIP)
    "+979 1234 5678",     # international premium rate
])
def test_satellite_and_international_ranges_are_denied_by_default(app_ctx: Any,
                                                                  raw: str) -> None:
    problem = _problem(phones.sms_phone, raw)
    assert (problem.status, problem.code, problem.field) == (
        422, "phone_country_not_allowed", "phone")


def test_denied_prefixes_are_a_setting(app_ctx: Any) -> None:
    configure(app_ctx, SMS_DENIED_PREFIXES=[])
    assert phones.sms_phone("+881612345678").region == "001"
    configure(app_ctx, SMS_DENIED_PREFIXES=["+1876"])  # e.g. Jamaica, a NANP member
    assert _problem(phones.sms_phone, "+1 876 210 1234").code == "phone_country_not_allowed"
    assert phones.sms_phone("+1 650 253 0000").region == "US"


def test_denied_prefixes_are_checked_at_start() -> None:
    from authserver.config import ConfigError, load

    with pytest.raises(ConfigError, match="SMS_DENIED_PREFIXES"):
        load({"SMS_DENIED_PREFIXES": "881"}, "/tmp/unused", environ={"SECRET_KEY": "x" * 32})


def test_personal_numbers_are_refused(app_ctx: Any) -> None:
    # UK 070 "personal numbers" are charged like premium rate: a toll-fraud favourite.
    problem = _problem(phones.sms_phone, "+44 70 1234 5678")
    assert (problem.status, problem.code) == (422, "invalid_phone")


def test_country_key_is_the_iso_region_not_the_calling_code(app_ctx: Any) -> None:
    assert phones.sms_phone("+1 650 253 0000").country_key == "US"
    assert phones.sms_phone("+1 876 210 1234").country_key == "JM"
    assert phones.sms_phone("+1 416 555 0123").country_key == "CA"
    configure(app_ctx, SMS_DENIED_PREFIXES=[])
    assert phones.sms_phone("+881612345678").country_key == "+881"  # no country
