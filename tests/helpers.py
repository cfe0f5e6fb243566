"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response) -> dict:  # type: ignore[no-untyped-def]
    """The problem body of an error response, after checking its media type."""
    assert response.mimetype == "application/problem+json", response.data[:200]
    body = response.get_json()
    assert body["status"] == response.status_code
    return body


def enrol_totp(user_id: str) -> str:
    """Give a user a confirmed authenticator app (committed); returns its base32 secret.

    Straight into the database, for tests about something else that need an enrolled user
    (the enrolment itself is tested through the API in tests/api/test_mfa.py)."""
    import pyotp

    from authserver import clock, mfa
    from authserver.extensions import db
    from authserver.models import TotpFactor

    secret = pyotp.random_base32(length=32)
    db.session.add(TotpFactor(user_id=user_id, secret_encrypted=mfa._encrypt(secret),
                              confirmed_at=clock.now(), last_used_step=None,
                              created_at=clock.now()))
    db.session.commit()
    return secret


def totp_code(secret: str, offset_steps: int = 0) -> str:
    """The app's code at the server's clock (plus `offset_steps` 30-second steps)."""
    import pyotp

    from authserver import clock

    return pyotp.TOTP(secret).at(clock.timestamp() + 30 * offset_steps)


def stable_headers(response) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The response's headers, less the one that differs per request by design (its id)."""
    return {(name, value) for name, value in response.headers
            if name.lower() != "x-request-id"}
