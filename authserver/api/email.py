"""POST /email/verify, POST /email/verify/resend, POST /me/email."""

from __future__ import annotations

from typing import Any

from authserver import ratelimits, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import email_change, email_confirmation, email_verification
from authserver.schemas.requests import EmailChange, EmailVerify
from authserver.schemas.responses import EmailVerified, MailSent, token_response, user_object
from authserver.transactions import committed


@bp.post("/email/verify")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
@endpoint(summary="Prove an address with the mailed link's token, or the e-mailed code",
          tag="email", request=EmailVerify, response=EmailVerified,
          description="A verification mail marks the account's address verified; an e-mail "
                      "change mail switches the account to the new address (verified) and "
                      "tells the old one. Answers the user object; under "
                      "EMAIL_VERIFICATION_REQUIRED a verification signs in and answers the "
                      "token response (with its `user`).",
          errors={401: [E.INVALID_LINK], 403: [E.ACCOUNT_DISABLED], 409: [E.EMAIL_TAKEN],
                  429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED]})
def verify_email(body: EmailVerify) -> EmailVerified:
    if body.token:
        confirmed = email_confirmation.confirm_link(body.token)
    elif body.email and body.code:
        confirmed = email_confirmation.confirm_code(body.email, body.code)
    else:
        raise Problem(400, E.INVALID_REQUEST, "Send either {token} or {email, code}.")
    if confirmed.issued is not None:
        return EmailVerified(token_response(confirmed.issued))
    return EmailVerified(user_object(confirmed.user))


@bp.post("/email/verify/resend")
@tokens.require_auth
@committed
@endpoint(summary="Mail the signed-in account's address a new verification link and code",
          tag="email", response=MailSent, status=202, security=(BEARER,),
          errors={400: [E.INVALID_REQUEST], 422: [E.INVALID_EMAIL], 429: [E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def resend_verification() -> dict[str, Any]:
    return email_verification.resend(tokens.current_user())


@bp.post("/me/email")
@tokens.require_recent_auth
@committed
@endpoint(summary="Change (or add) the account's e-mail address: mails the new one",
          tag="email", request=EmailChange, response=MailSent, status=202,
          security=(BEARER,),
          description="Needs a sign-in within REAUTH_MAX_AGE. The same answer whether or not "
                      "another account holds the address; confirming the change (POST "
                      "/email/verify) then answers 409 email_taken.",
          errors={401: [E.REAUTHENTICATION_REQUIRED], 422: [E.INVALID_EMAIL],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def change_email(body: EmailChange) -> dict[str, Any]:
    return email_change.request_change(tokens.current_user(), body.email)
