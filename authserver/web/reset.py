"""/login/forgot and /auth/reset: a forgotten password, reset from the mail.

/login/forgot asks for the mail and gives this browser the binding cookie, as /login/email
does. The GET of /auth/reset changes nothing; what it offers depends on where it is opened
(codes.LinkUse): in the browser that asked, a new-password form; anywhere else, the same
form with a box for the 6-digit code from the mail. So a mail scanner that opens the link
and presses what it finds resets nothing and burns nothing (web/link_pages.py).
"""

from __future__ import annotations

from flask import make_response, render_template, request
from werkzeug.wrappers import Response

from authserver import codes, ratelimits, tokens
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import password_reset
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.email import link_binding, set_link_binding
from authserver.web.forms import EmailLinkForm, NewPasswordForm, ResetCodeForm, required
from authserver.web.link_pages import LinkPage, page
from authserver.web.pages import Page, form_problem, render_form

#: Answers of the flow shown next to the form rather than as an error page.
SHOWN = {"invalid_link", "otp_attempts_exceeded", "rate_limited", "weak_password",
         "breached_password", "service_unavailable"}


def _form_page(form: NewPasswordForm, problem: Problem | None = None,
               email: str | None = None) -> Response:
    html, status, headers = render_form("reset.html", form, problem, email=email,
                                        needs_code=isinstance(form, ResetCodeForm))
    return page(html, status, headers)


LINK = LinkPage(peek=password_reset.peek_link, code_form=ResetCodeForm, code_page=_form_page,
                invalid_page=lambda: render_template("reset_invalid.html"), shown=SHOWN,
                keep_field=True)


@bp.route("/login/forgot", methods=["GET", "POST"])
@committed
def forgot() -> Response | Page | str:
    form = EmailLinkForm()
    if request.method == "GET":
        return render_form("forgot.html", form)
    if not form.validate_on_submit():
        return render_form("forgot.html", form, form_problem(form))
    binding = link_binding() or codes.new_binding()
    try:
        password_reset.request_reset(required(form.email), binding=binding)
    except Problem as problem:
        return render_form("forgot.html", form, problem)
    config = settings()
    response = make_response(render_template(
        "forgot_sent.html", email=required(form.email).strip(),
        expires_minutes=max(1, config.password_reset_ttl // 60)))
    # The cookie outlives the longer of a sign-in link and a reset link.
    set_link_binding(response, binding, max(config.magic_link_ttl, config.password_reset_ttl))
    return response


def _password_form(token: str, challenge: codes.Challenge, _use: codes.LinkUse) -> Response:
    return _form_page(NewPasswordForm(formdata=None, token=token), email=challenge.subject)


def _reset_with_code(token: str) -> Response:
    return LINK.use_code(lambda form: password_reset.reset_with_code(
        "", required(form.code), required(form.password), token=token, client="web"),
        _signed_in)


def _reset_with_link(token: str, challenge: codes.Challenge, _use: codes.LinkUse) -> Response:
    form = NewPasswordForm()
    if not form.validate_on_submit():
        return _form_page(form, form_problem(form), email=challenge.subject)
    try:
        reset = password_reset.reset_with_link(
            token, required(form.password), binding=link_binding(), client="web")
    except Problem as problem:
        if problem.code == "invalid_link":
            return LINK.invalid()
        if problem.code not in SHOWN:
            raise
        return _form_page(form, problem, email=challenge.subject)
    return _signed_in(reset)


def _signed_in(reset: tuple[tokens.IssuedTokens, codes.Challenge]) -> Response:
    issued, challenge = reset
    return web_session.after_sign_in(issued, redirect_to=challenge.redirect_to)


@bp.get("/auth/reset")
def reset_page() -> Response:
    return LINK.opened(_password_form)


@bp.post("/auth/reset")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def reset_submit() -> Response:
    return LINK.submitted(_reset_with_code, _reset_with_link)
