"""Account forms. Messages are English msgids, shown in the member's language."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from models import DomainError
from models.accounts import normalise_login

COMMON_PASSWORDS = {
    "12345678", "123456789", "1234567890", "password", "password1", "qwerty123", "11111111",
    "88888888", "66666666", "abc12345", "a1234567", "woaini520", "iloveyou", "00000000",
    "aa123456", "qq123456", "abcd1234", "1q2w3e4r", "123123123", "5201314520",
}


def strong_password(form, field):
    """At least 8 characters, letters and digits, not a common one, not the login itself."""
    value = field.data or ""
    if len(value) < 8:
        raise ValidationError(_l("Use at least 8 characters."))
    if value.lower() in COMMON_PASSWORDS or len(set(value)) < 4:
        raise ValidationError(_l("This password is too easy to guess. Choose another."))
    if not (any(c.isalpha() for c in value) and any(c.isdigit() for c in value)):
        raise ValidationError(_l("Use both letters and digits."))
    login = getattr(form, "login", None)
    if login is not None and login.data and value.strip().lower() == login.data.strip().lower():
        raise ValidationError(_l("Your password must differ from your login."))


def valid_login(form, field):
    try:
        field.kind, field.canonical = normalise_login(field.data)
    except DomainError as error:
        raise ValidationError(_l(error.message)) from None


class SignupForm(FlaskForm):
    login = StringField(
        _l("E-mail or mobile number"),
        validators=[DataRequired(_l("Enter an e-mail address or a mobile number.")), valid_login],
    )
    nickname = StringField(
        _l("Nickname"),
        validators=[
            DataRequired(_l("Choose a nickname.")),
            Length(min=2, max=20, message=_l("A nickname has 2 to 20 characters.")),
        ],
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Choose a password.")), strong_password])
    consent = BooleanField(
        _l("I have read and agree to the privacy policy"),
        validators=[DataRequired(_l("You need to agree to the privacy policy to sign up."))],
    )
    marketing = BooleanField(_l("Send me offers and win-back messages (optional)"))
    invite = HiddenField()


class LoginForm(FlaskForm):
    login = StringField(_l("E-mail or mobile number"), validators=[DataRequired(_l("Enter your e-mail or mobile number."))])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])
    remember = BooleanField(_l("Remember me on this device"))


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(_l("Enter your current password."))])
    password = PasswordField(_l("New password"), validators=[DataRequired(_l("Choose a password.")), strong_password])


class PhoneForm(FlaskForm):
    phone = StringField(
        _l("Mobile number"),
        validators=[
            DataRequired(_l("Enter your mobile number.")),
            Regexp(r"^\s*(\+86)?\s*1[3-9]\d{9}\s*$", message=_l("Enter a valid mainland mobile number (11 digits, starting with 1).")),
        ],
    )


class CodeForm(FlaskForm):
    phone = HiddenField()
    code = StringField(
        _l("Verification code"),
        validators=[
            DataRequired(_l("Enter the 6-digit code.")),
            Regexp(r"^\s*\d{6}\s*$", message=_l("The code has 6 digits.")),
        ],
    )


class ForgotForm(FlaskForm):
    login = StringField(
        _l("E-mail or mobile number"),
        validators=[DataRequired(_l("Enter your e-mail or mobile number.")), valid_login],
    )


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(_l("Choose a password.")), strong_password])


class ResetCodeForm(FlaskForm):
    """The code texted for a password reset, and the new password."""

    phone = HiddenField()
    nonce = HiddenField()
    code = CodeForm.code
    password = PasswordField(_l("New password"), validators=[DataRequired(_l("Choose a password.")), strong_password])


class SmsLoginForm(FlaskForm):
    """The code texted for an SMS login; a number without an account also accepts the privacy policy."""

    phone = HiddenField()
    nonce = HiddenField()
    code = CodeForm.code
    consent = BooleanField(_l("I have read and agree to the privacy policy"))
    remember = BooleanField(_l("Remember me on this device"))
