"""The web forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField, TelField
from wtforms.validators import InputRequired, Length

from authserver.passwords import MAX_INPUT_LENGTH

# Password fields take what the policy takes (passwords.MAX_INPUT_LENGTH); the length rule
# itself (PASSWORD_MIN_LENGTH, the maximum) is passwords.check_policy()'s, so a short new
# password gets the policy's 422 and its advice, the same as through the API, not a form error.


def required(field: StringField) -> str:
    """The text of an InputRequired field of a validated form (None only if it was not sent)."""
    assert field.data is not None, f"{field.name} read before validation"
    return field.data


class IdentifierForm(FlaskForm):
    """/login's first step: one box for an e-mail address or a phone number."""

    identifier = StringField("E-mail or phone number", validators=[
        InputRequired(message="Enter your e-mail address or your mobile number."),
        Length(max=254)])


class PasswordLoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[
        InputRequired(message="Enter your password."), Length(max=MAX_INPUT_LENGTH)])


class SignupForm(FlaskForm):
    name = StringField("Name (optional)", validators=[Length(max=200)])
    email = EmailField("E-mail", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[
        InputRequired(), Length(max=MAX_INPUT_LENGTH)])


class EmailLinkForm(FlaskForm):
    email = EmailField("E-mail", validators=[InputRequired(), Length(max=254)])


class PhoneForm(FlaskForm):
    phone = TelField("Mobile number", validators=[InputRequired(), Length(max=40)])


class SmsCodeForm(FlaskForm):
    code = StringField("6-digit code", validators=[InputRequired(), Length(max=12)])


class EmailCodeForm(FlaskForm):
    """"Check your inbox": the 6-digit code from the sign-in mail signs this browser in."""

    code = StringField("6-digit code from the e-mail", validators=[
        InputRequired(message="Enter the 6-digit code from the e-mail."), Length(max=12)])


class ConfirmForm(FlaskForm):
    """A bare form for buttons (sign out, sign out everywhere, confirm a link)."""

    token = HiddenField()


class LinkCodeForm(FlaskForm):
    """A mailed link opened in another browser: the code from the same mail proves it."""

    token = HiddenField()
    code = StringField("6-digit code from the e-mail", validators=[InputRequired(),
                                                                   Length(max=12)])


class NewPasswordForm(FlaskForm):
    """A reset link opened in the browser that asked for it: the new password is enough."""

    token = HiddenField()
    password = PasswordField("New password", validators=[
        InputRequired(), Length(max=MAX_INPUT_LENGTH)])


class ResetCodeForm(NewPasswordForm):
    """A reset link opened elsewhere: the code from the same mail proves it."""

    code = StringField("6-digit code from the e-mail", validators=[InputRequired(),
                                                                   Length(max=12)])


class PasswordChangeForm(FlaskForm):
    """/account/password: the current password (when the account has one) and the new one."""

    current_password = PasswordField("Current password", validators=[Length(max=1024)])
    password = PasswordField("New password", validators=[InputRequired(), Length(max=1024)])
