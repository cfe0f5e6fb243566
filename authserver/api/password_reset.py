"""POST /password/forgot, POST /password/reset."""

from __future__ import annotations

from typing import Any

from authserver import ratelimits
from authserver.api import bp
from authserver.api.endpoint import endpoint
from authserver.errors import ErrorCode as E
from authserver.errors import Problem
from authserver.flows import password_reset
from authserver.schemas.requests import PasswordForgot, PasswordReset
from authserver.schemas.responses import ResetSent, TokenResponse, token_response
from authserver.transactions import committed


@bp.post("/password/forgot")
@committed
@endpoint(summary="E-mail a password reset link and code", tag="auth",
          request=PasswordForgot, response=ResetSent, status=202,
          description="The same answer for every address: with an account, without one, "
                      "disabled or passwordless.",
          errors={422: [E.INVALID_EMAIL, E.INVALID_REDIRECT], 429: [E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def forgot(body: PasswordForgot) -> dict[str, Any]:
    return password_reset.request_reset(body.email, body.redirect_to)


@bp.post("/password/reset")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
@endpoint(summary="Set a new password with the link's token or the e-mailed code", tag="auth",
          request=PasswordReset, response=TokenResponse,
          description="Signs in (amr `email`) and revokes every other session of the account.",
          errors={401: [E.INVALID_LINK, E.MFA_REQUIRED],
                  422: [E.WEAK_PASSWORD, E.BREACHED_PASSWORD],
                  429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def reset(body: PasswordReset) -> TokenResponse:
    if body.token:
        issued, _ = password_reset.reset_with_link(body.token, body.password)
    elif body.email and body.code:
        issued, _ = password_reset.reset_with_code(body.email, body.code, body.password)
    else:
        raise Problem(400, E.INVALID_REQUEST, "Send either {token} or {email, code}, "
                                              "with the new password.")
    return token_response(issued)
