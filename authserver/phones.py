"""Phone numbers: what people type, turned into E.164 and checked before we pay for an SMS.

`parse_phone` only normalises (any common notation -> E.164); it is what look-ups use, so a
code requested as "(650) 253-0000" is found again when verified as "+1 650 253 0000".
`sms_phone` also refuses what must never be texted: numbers that are invalid, fixed-line only
or premium/shared-cost/personal (the usual targets of SMS pumping), numbers under
SMS_DENIED_PREFIXES (by default satellite and international networks), and countries outside
SMS_ALLOWED_COUNTRIES. Numbers in SMS_TEST_NUMBERS skip those checks: the operator listed
them and nothing is ever sent to them. The answers depend on the number alone, never on
whether it belongs to an account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from authserver.config import settings
from authserver.errors import Problem

# Longer input is never a phone number; it only makes the parser work for nothing.
MAX_PHONE_INPUT = 64

# Types that can receive a text. FIXED_LINE_OR_MOBILE is how NANP (US, Canada, ...) numbers
# classify, since their ranges don't tell the two apart. Left out on purpose, besides fixed
# lines: PREMIUM_RATE, SHARED_COST, TOLL_FREE, UAN and PERSONAL_NUMBER (the UK's 070 "follow
# me" numbers are charged like premium ones and are a known toll-fraud range). VOIP stays:
# many people's only number is one, and the costly non-geographic VoIP ranges (+882, +883)
# are on SMS_DENIED_PREFIXES.
SMS_CAPABLE = frozenset({
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
})


@dataclass(frozen=True)
class Phone:
    e164: str
    region: str | None  # ISO 3166 code, e.g. "US"; "001" for non-geographic numbers
    calling_code: int  # e.g. 1 for the whole NANP, 44 for the UK

    @property
    def country_key(self) -> str:
        """The per-country budget's key: the ISO country ("JM" and "US" both dial +1 but are
        two countries), or "+CODE" for numbers of no country (+882 ...)."""
        if self.region and self.region != "001":
            return self.region
        return f"+{self.calling_code}"


def _invalid() -> Problem:
    return Problem(422, "invalid_phone",
                   "Enter a valid mobile phone number, with its country code if it is "
                   "not a local number.", field="phone")


def _parse(raw: object, default_region: str) -> phonenumbers.PhoneNumber:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_PHONE_INPUT:
        raise _invalid()
    try:
        number = phonenumbers.parse(raw.strip(), default_region.upper())
    except NumberParseException:
        raise _invalid() from None
    # An extension can't receive a text, and dropping it would map two inputs to one E.164.
    if number.extension:
        raise _invalid()
    return number


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def parse_phone(raw: object, default_region: str | None = None) -> str:
    """The E.164 form of `raw` (422 invalid_phone if it can't be read as a number at all)."""
    region = default_region or settings().phone_default_region
    return _e164(_parse(raw, region))


def normalize_test_numbers(numbers: Mapping[str, str], default_region: str) -> dict[str, str]:
    """SMS_TEST_NUMBERS keyed by E.164, so any notation of a test number finds its code."""
    out: dict[str, str] = {}
    for raw, code in numbers.items():
        try:
            out[_e164(_parse(raw, default_region))] = code
        except Problem:
            raise ValueError(f"SMS_TEST_NUMBERS: {raw!r} is not a phone number") from None
    return out


def sms_phone(
    raw: object,
    *,
    default_region: str | None = None,
    allowed_countries: Iterable[str] | None = None,
    test_numbers: Iterable[str] = (),
) -> Phone:
    """A number we may text: valid, SMS-capable, in an allowed country (or a test number).

    Raises 422 invalid_phone or 422 phone_country_not_allowed.
    """
    config = settings()
    region = default_region or config.phone_default_region
    allowed = {c.strip().upper() for c in (
        config.sms_allowed_countries if allowed_countries is None else allowed_countries)}
    number = _parse(raw, region)
    e164 = _e164(number)
    country = phonenumbers.region_code_for_number(number)
    phone = Phone(e164=e164, region=country, calling_code=int(number.country_code or 0))
    if e164 in set(test_numbers):
        return phone
    if denied(e164, config.sms_denied_prefixes):
        raise _country_not_allowed()
    if not phonenumbers.is_valid_number(number):
        raise _invalid()
    if allowed and country not in allowed:
        raise _country_not_allowed()
    if phonenumbers.number_type(number) not in SMS_CAPABLE:
        raise Problem(422, "invalid_phone",
                      "This number can't receive text messages. Enter a mobile number.",
                      field="phone")
    return phone


def denied(e164: str, prefixes: Iterable[str]) -> bool:
    """True if `e164` starts with one of `prefixes` ("+881", "+1876", ...)."""
    return any(e164.startswith(prefix) for prefix in prefixes)


def _country_not_allowed() -> Problem:
    return Problem(422, "phone_country_not_allowed",
                   "Text messages can't be sent to numbers in this country.", field="phone")


def mask(e164: str) -> str:
    """A number fit for logs: the country code and the last two digits only."""
    if len(e164) < 6:
        return "+***"
    return e164[:2] + "*" * (len(e164) - 4) + e164[-2:]


def display(e164: str | None) -> str:
    """A stored number as people write it (INTERNATIONAL: "+1 650-253-0000"); the stored
    text itself when it does not parse."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
