"""/login/forgot and /auth/reset: a forgotten password, reset from the mail.

/login/forgot asks for the mail and gives this browser the binding cookie, as /login/email
does. The GET of /auth/reset changes nothing; what it offers depends on where it is opened
(codes.LinkUse): in the browser that asked, a new-password form; anywhere else, the same
form with a box for the 6-digit code from the mail. So a mail scanner that opens the link
and presses what it finds resets nothing and burns nothing.
"""

from __future__ import annotations

from flask import make_response, render_template, request
from werkzeug.wrappers import Response

from authserver import codes, ratelimits
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import password_reset
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.email import link_binding, set_link_binding
from authserver.web.forms import EmailLinkForm, NewPasswordForm, ResetCodeForm, required
from authserver.web.pages import Page, form_problem, render_form

INVALID_STATUS = 410
#: Answers of the flow shown next to the form rather than as an error page.
SHOWN = {"invalid_link", "otp_attempts_exceeded", "rate_limited", "weak_password",
         "breached_password", "service_unavailable"}


def _page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = make_response(html, status)
    # The token is in this page's URL: never hand it to another site in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def _form_page(form: NewPasswordForm, problem: Problem | None = None,
               email: str | None = None) -> Response:
    html, status, headers = render_form("reset.html", form, problem, email=email,
                                        needs_code=isinstance(form, ResetCodeForm))
    return _page(html, status, headers)


def _invalid() -> Response:
    return _page(render_template("reset_invalid.html"), INVALID_STATUS)


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


@bp.get("/auth/reset")
def reset_page() -> Response:
    token = request.args.get("token", "")
    opened = password_reset.peek_link(token, link_binding())
    if opened is None:
        return _invalid()
    challenge, use = opened
    if use is codes.LinkUse.HERE:
        return _form_page(NewPasswordForm(formdata=None, token=token), email=challenge.subject)
    return _form_page(ResetCodeForm(formdata=None, token=token))


@bp.post("/auth/reset")
@ratelimits.route(ratelimits.LINK_VERIFY_IP)
@committed
def reset_submit() -> Response:
    # CSRFProtect has already refused a post without a valid token from our own page.
    token = request.form.get("token", "")
    if "code" in request.form:
        code_form = ResetCodeForm()
        if not code_form.validate_on_submit():
            return _form_page(code_form, form_problem(code_form))
        try:
            issued, challenge = password_reset.reset_with_code(
                "", required(code_form.code), required(code_form.password), token=token,
                client="web")
        except Problem as problem:
            if problem.code not in SHOWN:
                raise
            problem.field = problem.field or "code"
            return _form_page(code_form, problem)
        return web_session.after_sign_in(issued, redirect_to=challenge.redirect_to)
    opened = password_reset.peek_link(token, link_binding())
    if opened is None:
        return _invalid()
    if opened[1] is not codes.LinkUse.HERE:
        # Pressed without the asking browser's cookie: nothing is used.
        return _form_page(ResetCodeForm(formdata=None, token=token))
    form = NewPasswordForm()
    if not form.validate_on_submit():
        return _form_page(form, form_problem(form), email=opened[0].subject)
    try:
        issued, challenge = password_reset.reset_with_link(
            token, required(form.password), binding=link_binding(), client="web")
    except Problem as problem:
        if problem.code == "invalid_link":
            return _invalid()
        if problem.code not in SHOWN:
            raise
        return _form_page(form, problem, email=opened[0].subject)
    return web_session.after_sign_in(issued, redirect_to=challenge.redirect_to)
