"""/login/sms: ask for a code by SMS, then type it on the code page.

The code page says how many tries are left (counted for this browser since its code was
sent) and when a new code may be asked for, instead of a bare error.
"""

from __future__ import annotations

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from authserver import clock, codes
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import sms_otp
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import PhoneForm, SmsCodeForm, required
from authserver.web.pages import Page, form_problem, render_form

PHONE_KEY = "sms_phone"
RESEND_AT_KEY = "sms_resend_at"  # when another code may be asked for (epoch seconds)
WRONG_KEY = "sms_wrong"  # wrong codes typed in this browser since the code was sent


@bp.route("/login/sms", methods=["GET", "POST"])
@committed
def sms_request() -> Response | Page:
    form = PhoneForm()
    # A code already on its way: the page offers to go back and type it.
    pending = session.get(PHONE_KEY)
    if request.method == "GET":
        if pending and not form.phone.data:
            form.phone.data = pending  # "send a new code" keeps the number
        return render_form("sms_request.html", form, pending=pending)
    if not form.validate_on_submit():
        return render_form("sms_request.html", form, form_problem(form), pending=pending)
    try:
        sent = sms_otp.request_code(required(form.phone))
    except Problem as problem:
        return render_form("sms_request.html", form, problem, pending=pending)
    session[PHONE_KEY] = sent["phone"]
    session[RESEND_AT_KEY] = clock.timestamp() + int(sent["resend_after"])
    session[WRONG_KEY] = 0
    return redirect(url_for("web.sms_code"), code=303)


def _code_page(form: SmsCodeForm, phone: str, problem: Problem | None = None,
               status: str | None = None, status_code: int = 200,
               headers: dict[str, str] | None = None) -> Page:
    resend_at, wrong = session.get(RESEND_AT_KEY), session.get(WRONG_KEY)
    resend_in = max(0, resend_at - clock.timestamp()) if isinstance(resend_at, int) else 0
    tries_left = max(0, settings().otp_max_attempts - (wrong if isinstance(wrong, int) else 0))
    html, code, problem_headers = render_form(
        "sms_code.html", form, problem, phone=phone, status=status, tries_left=tries_left,
        resend_in=resend_in, resend_form=PhoneForm(formdata=None, phone=phone),
        expires_minutes=max(1, settings().otp_ttl // 60))
    return html, code if problem is not None else status_code, {**problem_headers,
                                                                **(headers or {})}


@bp.route("/login/sms/code", methods=["GET", "POST"])
@committed
def sms_code() -> Response | Page:
    phone = session.get(PHONE_KEY)
    if not phone:
        return redirect(url_for("web.sms_request"))
    form = SmsCodeForm()
    if request.method == "GET":
        return _code_page(form, phone)
    if not form.validate_on_submit():
        return _code_page(form, phone, form_problem(form))
    if codes.normalize_code(required(form.code)) is None:
        form.code.errors = ["Enter the 6 digits from the text message."]  # no try is used
        return _code_page(form, phone, status_code=400)
    try:
        issued = sms_otp.verify_code(phone, required(form.code).strip(), client="web")
    except Problem as problem:
        if problem.code not in {"invalid_otp", "otp_attempts_exceeded"}:
            problem.field = None  # a limit or an outage: said above the form
            return _code_page(form, phone, problem)
        wrong = session.get(WRONG_KEY)
        session[WRONG_KEY] = (wrong if isinstance(wrong, int) else 0) + 1
        form.code.data = ""
        left = max(0, settings().otp_max_attempts - session[WRONG_KEY])
        if problem.code == "otp_attempts_exceeded" or not left:
            session[WRONG_KEY] = settings().otp_max_attempts
            return _code_page(form, phone, status=(
                "That code no longer works: too many wrong tries. Ask for a new code below."),
                status_code=429, headers=problem.headers)
        return _code_page(form, phone, status=(
            f"That code didn't match. {left} {'try' if left == 1 else 'tries'} left."),
            status_code=401)
    session.pop(PHONE_KEY, None)
    return web_session.after_sign_in(issued)
