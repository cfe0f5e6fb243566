"""/login (password), /signup, and the start of a hand-off to a client app."""

from __future__ import annotations

from flask import make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from authserver import codes
from authserver.config import settings
from authserver.errors import Problem
from authserver.flows import handoff, password
from authserver.redirects import check_redirect
from authserver.transactions import committed
from authserver.web import bp
from authserver.web import session as web_session
from authserver.web.email import link_binding, set_link_binding
from authserver.web.forms import (
    EmailLinkForm,
    PasswordLoginForm,
    PhoneForm,
    SignupForm,
    required,
)
from authserver.web.pages import Page, form_problem, render_form

# Every sign-in page keeps a pending app hand-off only for the attempt it belongs to, and
# carries that attempt on to the next page (see web/session.py).
bp.before_request(web_session.bind_sign_in_page)
bp.url_defaults(web_session.carry_attempt)


def _remember_handoff() -> Problem | None:
    """Start an app's sign-in attempt from ?redirect_to=&code_challenge=&state=."""
    if "redirect_to" not in request.args:
        return None
    # A new attempt replaces the old one, even when it is refused below.
    web_session.drop_handoff()
    try:
        target = check_redirect(request.args.get("redirect_to") or None)
        challenge = handoff.check_challenge(request.args.get("code_challenge"),
                                            request.args.get("code_challenge_method"))
        state = handoff.check_state(request.args.get("state"))
    except Problem as problem:
        # The API's wording speaks to developers; a person only needs to know where to go.
        problem.detail = ("The app that sent you here is not allowed to receive sign-ins "
                          "from this server. Sign in here, or go back to the app.")
        return problem
    if target is not None:
        web_session.start_handoff(target, challenge, state)
    return None


def _login_page(form: PasswordLoginForm | None = None,
                problem: Problem | None = None) -> Page:
    if problem is not None and problem.code == "invalid_credentials":
        problem.field = "password"  # shown under the password box, as the form's error
    context = {"email_form": EmailLinkForm(formdata=None), "phone_form": PhoneForm(formdata=None)}
    if problem is not None and problem.code == "invalid_redirect":
        page, _, _ = render_form("login.html", form or PasswordLoginForm(), None,
                                 handoff_error=problem.detail, **context)
        return page, problem.status, {}
    return render_form("login.html", form or PasswordLoginForm(), problem, **context)


@bp.route("/login", methods=["GET", "POST"])
@committed
def login() -> Response | Page:
    if request.method == "GET":
        problem = _remember_handoff()
        if problem is None and web_session.current() and not web_session.pending_handoff():
            return redirect(url_for("web.account"), code=303)
        return _login_page(problem=problem)
    form = PasswordLoginForm()
    if not form.validate_on_submit():
        return _login_page(form, form_problem(form))
    try:
        issued = password.sign_in(required(form.email), required(form.password), client="web")
    except Problem as problem:
        return _login_page(form, problem)
    return web_session.after_sign_in(issued)


@bp.route("/signup", methods=["GET", "POST"])
@committed
def signup() -> Response | Page:
    form = SignupForm()
    if request.method == "GET":
        return render_form("signup.html", form, _remember_handoff())
    if not form.validate_on_submit():
        return render_form("signup.html", form, form_problem(form))
    binding = link_binding() or codes.new_binding()
    try:
        issued = password.sign_up(required(form.email), required(form.password),
                                  form.name.data or None, client="web", binding=binding)
    except Problem as problem:
        return render_form("signup.html", form, problem)
    # The verification mail's link works in this browser (elsewhere it asks for the code).
    response = web_session.after_sign_in(issued) if issued is not None else make_response(
        render_template("signup_sent.html", email=required(form.email).strip()))
    set_link_binding(response, binding, settings().email_verification_ttl)
    return response


@bp.get("/")
def index() -> Response:
    return redirect(url_for("web.account" if web_session.current() else "web.login"))
