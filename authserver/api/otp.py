"""POST /otp/request, POST /otp/verify: sign in with a code sent by SMS."""

from __future__ import annotations

from flask import Response, jsonify

from authserver.api import bp
from authserver.api.body import json_body
from authserver.api.token_response import token_json
from authserver.flows import sms_otp
from authserver.transactions import committed


@bp.post("/otp/request")
@committed
def otp_request() -> tuple[Response, int]:
    body = json_body(required=("phone",))
    sent = sms_otp.request_code(body["phone"])
    return jsonify({"sent": sent["sent"], "expires_in": sent["expires_in"],
                    "resend_after": sent["resend_after"]}), 202


@bp.post("/otp/verify")
@committed
def otp_verify() -> Response:
    body = json_body(required=("phone", "code"))
    return token_json(sms_otp.verify_code(body["phone"], body["code"]))
