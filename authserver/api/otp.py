"""POST /otp/request, POST /otp/verify: sign in with a code sent by SMS."""

from __future__ import annotations

from typing import Any

from authserver.api import bp
from authserver.api.endpoint import endpoint
from authserver.errors import ErrorCode as E
from authserver.flows import sms_otp
from authserver.schemas.requests import OtpRequest, OtpVerify
from authserver.schemas.responses import OtpSent, TokenResponse, token_response
from authserver.transactions import committed


@bp.post("/otp/request")
@committed
@endpoint(summary="Text a 6-digit sign-in code to a phone", tag="sms",
          request=OtpRequest, response=OtpSent, status=202,
          errors={422: [E.INVALID_PHONE, E.PHONE_COUNTRY_NOT_ALLOWED],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def otp_request(body: OtpRequest) -> dict[str, Any]:
    # The flow also returns the E.164 phone; OtpSent leaves it out of the answer.
    return sms_otp.request_code(body.phone)


@bp.post("/otp/verify")
@committed
@endpoint(summary="Sign in with the texted code", tag="sms",
          request=OtpVerify, response=TokenResponse,
          errors={401: [E.INVALID_OTP, E.MFA_REQUIRED], 403: [E.ACCOUNT_DISABLED],
                  422: [E.INVALID_PHONE, E.PHONE_COUNTRY_NOT_ALLOWED],
                  429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def otp_verify(body: OtpVerify) -> TokenResponse:
    return token_response(sms_otp.verify_code(body.phone, body.code))
