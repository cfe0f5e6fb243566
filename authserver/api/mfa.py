"""The second factor: set up an authenticator app, finish a sign-in with it, turn it off."""

from __future__ import annotations

from authserver import ratelimits, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.flows import mfa as mfa_flow
from authserver.flows import mfa_settings
from authserver.schemas.requests import MfaCode, MfaProof, MfaVerify
from authserver.schemas.responses import (
    RecoveryCodes,
    TokenResponse,
    TotpEnrolment,
    token_response,
)
from authserver.transactions import committed

RECENT = ("Needs a recent sign-in (the token's `auth_time` within REAUTH_MAX_AGE), else "
          "`401 reauthentication_required`.")


@bp.post("/mfa/totp/enroll")
@ratelimits.route(ratelimits.TOKEN_IP)
@tokens.require_recent_auth
@committed
@endpoint(summary="Start setting up an authenticator app", tag="mfa", response=TotpEnrolment,
          security=(BEARER,),
          description="A fresh secret, its otpauth URI and QR code (SVG), shown this once; "
                      "pending until confirmed, and a new enroll replaces a pending one. "
                      + RECENT,
          errors={401: [E.REAUTHENTICATION_REQUIRED], 409: [E.MFA_ALREADY_ENROLLED],
                  429: [E.RATE_LIMITED]})
def totp_enroll() -> TotpEnrolment:
    enrolment = mfa_settings.enroll(tokens.current_user())
    return TotpEnrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri,
                         qr_svg=enrolment.qr_svg)


@bp.post("/mfa/totp/confirm")
@ratelimits.route(ratelimits.TOKEN_IP)
@tokens.require_recent_auth
@committed
@endpoint(summary="Confirm the authenticator app with its first code", tag="mfa",
          request=MfaCode, response=RecoveryCodes, security=(BEARER,),
          description="Answers the recovery codes, shown this once. " + RECENT,
          errors={401: [E.INVALID_OTP, E.REAUTHENTICATION_REQUIRED],
                  409: [E.MFA_NOT_ENROLLED, E.MFA_ALREADY_ENROLLED], 429: [E.RATE_LIMITED]})
def totp_confirm(body: MfaCode) -> RecoveryCodes:
    return RecoveryCodes(recovery_codes=mfa_settings.confirm(tokens.current_user(), body.code))


@bp.delete("/mfa/totp")
@ratelimits.route(ratelimits.TOKEN_IP)
@tokens.require_recent_auth
@committed
@endpoint(summary="Turn the authenticator app off", tag="mfa", request=MfaProof, status=204,
          security=(BEARER,),
          description="Needs a current code or a recovery code; the recovery codes go too. "
                      + RECENT,
          errors={401: [E.INVALID_OTP, E.REAUTHENTICATION_REQUIRED],
                  409: [E.MFA_NOT_ENROLLED], 429: [E.RATE_LIMITED]})
def totp_disable(body: MfaProof) -> None:
    mfa_settings.disable(tokens.current_user(), body.code, body.recovery_code)


@bp.post("/mfa/recovery-codes")
@ratelimits.route(ratelimits.TOKEN_IP)
@tokens.require_recent_auth
@committed
@endpoint(summary="A new set of recovery codes", tag="mfa", request=MfaProof,
          response=RecoveryCodes, security=(BEARER,),
          description="Needs a current code or a recovery code; the old codes die. " + RECENT,
          errors={401: [E.INVALID_OTP, E.REAUTHENTICATION_REQUIRED],
                  409: [E.MFA_NOT_ENROLLED], 429: [E.RATE_LIMITED]})
def mfa_recovery_codes(body: MfaProof) -> RecoveryCodes:
    return RecoveryCodes(recovery_codes=mfa_settings.regenerate(
        tokens.current_user(), body.code, body.recovery_code))


@bp.post("/mfa/verify")
@ratelimits.route(ratelimits.TOKEN_IP)
@committed
@endpoint(summary="Finish a sign-in with the second factor", tag="mfa", request=MfaVerify,
          response=TokenResponse,
          description="After a sign-in answered `401 mfa_required`: its `mfa_token` with the "
                      "authenticator app's current `code` or a `recovery_code`.",
          errors={401: [E.INVALID_OTP, E.INVALID_GRANT], 403: [E.ACCOUNT_DISABLED],
                  429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED]})
def mfa_verify(body: MfaVerify) -> TokenResponse:
    return token_response(mfa_flow.verify(body.mfa_token, body.code, body.recovery_code))

