"""/login/sms: ask for a code by SMS, then type it on the code page."""

from __future__ import annotations

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from authserver.errors import Problem
from authserver.flows import sms_otp
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.forms import PhoneForm, SmsCodeForm, required
from authserver.web.pages import Page, form_problem, render_form

PHONE_KEY = "sms_phone"


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
    return redirect(url_for("web.sms_code"), code=303)


@bp.route("/login/sms/code", methods=["GET", "POST"])
@committed
def sms_code() -> Response | Page:
    phone = session.get(PHONE_KEY)
    if not phone:
        return redirect(url_for("web.sms_request"))
    form = SmsCodeForm()
    if request.method == "GET":
        return render_form("sms_code.html", form, phone=phone)
    if not form.validate_on_submit():
        return render_form("sms_code.html", form, form_problem(form), phone=phone)
    try:
        issued = sms_otp.verify_code(phone, required(form.code).strip(), client="web")
    except Problem as problem:
        if problem.field is None:
            problem.field = "code"
        return render_form("sms_code.html", form, problem, phone=phone)
    session.pop(PHONE_KEY, None)
    return web_session.after_sign_in(issued)
