"""The second factor at sign-in: finish a stepped-up sign-in with an authenticator app.

`verify` trades the mfa_token of a stepped-up sign-in (see mfa.require_second_factor) and the
app's code, or a recovery code, for the token response (amr: the first factor's + "otp", or
+ "mfa" for a recovery code). Setting the app up and turning it off are
flows/mfa_settings.py's, which checks its proofs with `second_factor` too.

Limits on `verify`: per client IP (the API's route limit), MFA_MAX_ATTEMPTS wrong tries per
mfa_token (the try that uses the last one kills it: 429 otp_attempts_exceeded), and wrong
codes per account across its tokens (CODE_GUESS_LIMIT, 429 rate_limited).
"""

from __future__ import annotations

import logging
from typing import Any

from authserver import codes, mfa, ratelimits, tokens
from authserver.errors import ErrorCode, Problem
from authserver.events import Method
from authserver.extensions import db
from authserver.flows import attempts
from authserver.models import User
from authserver.tokens import IssuedTokens

log = logging.getLogger("authserver.flows.mfa")


def missing_proof() -> Problem:
    """400: neither the app's code nor a recovery code was sent."""
    return Problem(400, ErrorCode.INVALID_REQUEST, "Send `code` (from the authenticator app) "
                   "or `recovery_code`.", errors=[
                       {"field": "code", "message": "This field is required."}])


def invalid_otp() -> Problem:
    """401: the code (or recovery code) is wrong or was already used."""
    return Problem(401, ErrorCode.INVALID_OTP, "The code is wrong or was already used. Enter "
                   "the current code from your authenticator app.", field="code")


def _invalid_mfa_token() -> Problem:
    return Problem(401, ErrorCode.INVALID_GRANT, "The mfa_token is unknown, used or expired. "
                   "Sign in again.")


def _attempts_exceeded() -> Problem:
    return Problem(429, ErrorCode.OTP_ATTEMPTS_EXCEEDED, "Too many wrong codes: this sign-in "
                   "no longer works. Sign in again.", field="code")


def second_factor(user: User, code: Any, recovery_code: Any) -> str | None:
    """The amr the given proof (a recovery code when one is given, else the app's code) adds
    when it is right (and used now), else None."""
    if recovery_code is not None:
        return mfa.RECOVERY_AMR if mfa.use_recovery_code(user.id, recovery_code) else None
    return mfa.TOTP_AMR if mfa.check_code(user.id, code) else None


def verify(mfa_token: Any, code: Any = None, recovery_code: Any = None, *,
           client: str = "api") -> IssuedTokens:
    """Finish a stepped-up sign-in: the token response for the right second factor.

    401 invalid_grant (unknown, used or expired mfa_token), 401 invalid_otp (wrong or
    replayed code, used recovery code), 429 otp_attempts_exceeded (the wrong try that used
    the token's last attempt, and every try after it), 429 rate_limited (per account).
    """
    with attempts.signin(Method.RECOVERY_CODE if recovery_code is not None
                         else Method.TOTP) as attempt:
        return _verify(attempt, mfa_token, code, recovery_code, client)


def _verify(attempt: attempts.Attempt, mfa_token: Any, code: Any, recovery_code: Any,
            client: str) -> IssuedTokens:
    if code is None and recovery_code is None:
        raise missing_proof()
    challenge = mfa.open_token(mfa_token)
    if challenge is None:
        raise _invalid_mfa_token()
    attempt.user_id = challenge.user_id
    max_attempts = mfa.PURPOSE.setting("max_attempts")
    if challenge.attempts >= max_attempts:
        raise _attempts_exceeded()
    user = db.session.get(User, challenge.user_id) if challenge.user_id else None
    if not mfa.is_live(challenge) or user is None:
        raise _invalid_mfa_token()
    db.session.commit()  # ends the read: the UPDATEs below see what others committed
    guesses = (ratelimits.CODE_GUESSES, f"mfa:{user.id}")
    ratelimits.check(*guesses)
    method = second_factor(user, code, recovery_code)
    if method is None:
        ratelimits.count(*guesses)
        taken = codes.count_wrong_try(mfa.PURPOSE, challenge.id)
        log.info("second factor wrong user=%s id=%s", user.id, challenge.id)
        now = codes.find(mfa.PURPOSE, challenge.id)
        if now is not None and now.attempts >= max_attempts:
            raise _attempts_exceeded()  # this try used the last attempt, or others did
        if not taken:
            raise _invalid_mfa_token()  # used or expired meanwhile
        raise invalid_otp()
    if not codes.consume(mfa.PURPOSE, challenge.id, attempts_below=max_attempts):
        # Used or killed meanwhile: give the second factor back (a recovery code must not
        # be spent on a sign-in that did not happen).
        db.session.rollback()
        raise _invalid_mfa_token()
    first = (challenge.state or "").split()
    log.info("second factor verified user=%s id=%s method=%s", user.id, challenge.id, method)
    return tokens.issue(user, [*first, method], client=client)
