"""Sign up, log in, log out, password change and mobile verification."""
from __future__ import annotations

import secrets

from flask import Blueprint, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_limiter.util import get_remote_address
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from extensions import limiter
from blueprints.transactions import begin_write, reads_first
from blueprints.access import back_url
from blueprints.auth.forms import (CodeForm, ForgotForm, LoginForm, NewPasswordForm, PasswordForm, PhoneForm,
                                   ResetCodeForm, SignupForm, SmsLoginForm)
from blueprints.web import domain_message, form_page, render
from models import DomainError, SmsCode, User, db, notify
from models.accounts import (PhoneTaken, check_phone_claim, create_phone_account, mask_phone, normalise_login,
                             verify_phone)
from models.consents import record_signup
from models.content_filter import screen
from models.loyalty import lock_member
from models.nonces import check_nonce
from models.outbox import enqueue
from models.referrals import record_invitation
from models.types import utcnow
from services.tasks import send_password_reset_mail, send_sms_code

bp = Blueprint("auth", __name__)

# A form whose page expired (a stale CSRF token) comes back with what was typed and a notice:
# each form view names the function that shows it again (`form_page`, blueprints/web.py).


DEVICE_COOKIE = "cy_device"


def device_id() -> str:
    """This browser's long-lived random id (the referral heuristic compares them)."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return value if len(value) == 32 and value.isalnum() else secrets.token_hex(16)


def remember_device(response, value: str) -> None:
    response.set_cookie(DEVICE_COOKIE, value, max_age=60 * 60 * 24 * 365 * 2, samesite="Lax", httponly=True)


def _signup_again(refused):
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    return render_template("auth/signup.html", form=refused.on(SignupForm()))


@bp.route("/signup", methods=["GET", "POST"])
@form_page(_signup_again)
@limiter.limit("10 per minute; 50 per day", methods=["POST"])
@reads_first
def signup():
    """Create an account with an e-mail address or a mobile number."""
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = SignupForm(invite=request.args.get("invite") or request.cookies.get("invite", ""))
    if form.validate_on_submit():
        kind, value = form.login.kind, form.login.canonical
        screened = screen(form.nickname.data)
        if screened.blocked or screened.review:  # a nickname cannot wait for review: any hit refuses
            form.nickname.errors.append(_("Please choose another nickname: “%(words)s” is not allowed.",
                                          words="、".join(screened.blocked + screened.review)))
            return render_template("auth/signup.html", form=form), 422
        user = User(
            nickname=form.nickname.data.strip(),
            consent_version=current_app.config["PRIVACY_POLICY_VERSION"],
            consent_at=utcnow(),
            marketing_opt_in=bool(form.marketing.data),
            locale=request.cookies.get("lang") or None,
            **{kind: value},
        )
        user.set_password(form.password.data)  # the slow hash, before the write lock
        user.signup_device = device_id()
        begin_write()
        if User.login_taken(kind, value):
            form.login.errors.append(
                _("This mobile number is already registered. Log in instead.")
                if kind == "phone"
                else _("This e-mail address is already registered. Log in instead.")
            )
        else:
            db.session.add(user)
            db.session.flush()
            record_signup(user, source="signup", ip=request.remote_addr, now=user.consent_at)
            record_invitation(user, form.invite.data)
            notify(user, "welcome", {"nickname": user.nickname}, link=url_for("communities.index"))
            db.session.commit()
            login_user(user)
            if kind == "phone":
                flash(_("Welcome! Verify your mobile number to post and comment."), "success")
                response = redirect(url_for("auth.phone"))
            else:
                flash(_("Welcome to Cheyou! Join the communities that fit you."), "success")
                response = redirect(url_for("communities.index"))
            remember_device(response, user.signup_device)
            response.delete_cookie("invite")
            return response
    return render_template("auth/signup.html", form=form), 422 if request.method == "POST" else 200


def _login_again(refused):
    if current_user.is_authenticated:
        return redirect(back_url(url_for("main.home")))
    return render_template("auth/login.html", form=refused.on(LoginForm()))


@bp.route("/login", methods=["GET", "POST"])
@form_page(_login_again)
@limiter.limit("10 per minute; 100 per day", methods=["POST"])
@reads_first  # it writes nothing: logins never queue behind the write lock
def login():
    """Log in with an e-mail address or mobile number and a password."""
    if current_user.is_authenticated:
        return redirect(back_url(url_for("main.home")))
    form = LoginForm()
    if form.validate_on_submit():
        user = User.find_by_login(form.login.data)
        if user is not None and user.check_password(form.password.data):
            login_user(user, remember=bool(form.remember.data))
            return redirect(back_url(url_for("main.home")))
        form.password.errors.append(_("The login or the password is wrong."))
    return render_template("auth/login.html", form=form), 422 if request.method == "POST" else 200


@bp.post("/logout")
def logout():
    """Log out and ask the browser to drop cached pages and offline data (shared phones)."""
    logout_user()
    response = redirect(url_for("main.home"))
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    flash(_("You have logged out."), "info")
    return response


@login_required
def _password_again(refused):
    form = PasswordForm()
    if not current_user.has_password:
        del form.current
    return render_template("auth/password.html", form=refused.on(form))


@bp.route("/password", methods=["GET", "POST"])
@form_page(_password_again)
@login_required
@limiter.limit("10 per hour", methods=["POST"])
@reads_first
def password():
    """Change the password; every other session ends."""
    form = PasswordForm()
    if not current_user.has_password:
        del form.current  # an account made by SMS login sets its first password
    if form.validate_on_submit():
        if current_user.has_password and not current_user.check_password(form.current.data):
            form.current.errors.append(_("The current password is wrong."))
        else:
            hashed = User.hash_password(form.password.data)  # the slow part, before the write lock
            begin_write()
            current_user.change_password(hashed)
            notify(current_user, "password_changed")
            db.session.commit()
            login_user(current_user._get_current_object(), remember=bool(request.cookies.get("remember_token")))
            flash(_("Password changed. Your other devices have been signed out."), "success")
            return redirect(url_for("me.index"))
    return render_template("auth/password.html", form=form), 422 if request.method == "POST" else 200


@bp.get("/phone")
@login_required
def phone():
    """Verify a mobile number by SMS code (required to post and comment)."""
    form = PhoneForm(phone=current_user.phone or "")
    return render_template("auth/phone.html", form=form, code_form=None)


@login_required
def _phone_send_again(refused):
    """The number form again: its page expired, or the number is another account's or verified."""
    return render("auth/phone.html", "auth/_phone_form.html", form=refused.on(PhoneForm(), "phone"), code_form=None,
                  masked="", resend_in=0, resend_error=None)


@bp.post("/phone/send")
@form_page(_phone_send_again)
@login_required
@limiter.limit("5 per minute; 20 per day", methods=["POST"])
def phone_send():
    """Send a code to the number typed; the code form replaces the number form."""
    form = PhoneForm()
    code_form = None
    resend_error = None
    if form.validate_on_submit():
        _kind, number = normalise_login(form.phone.data)
        check_phone_claim(current_user, number)  # refused: `_phone_send_again` says why under the number
        try:
            code = SmsCode.issue(number, "verify", requested_by=current_user,
                                 daily_budget=current_app.config["SMS_DAILY_BUDGET"])
        except DomainError as error:
            if SmsCode.live(number, "verify"):  # the code already sent still works: keep its field
                code_form = CodeForm(phone=number, formdata=None)
                resend_error = domain_message(error)
            else:
                form.phone.errors.append(domain_message(error))
        else:
            enqueue(send_sms_code, number, code, "verify")
            db.session.commit()
            code_form = CodeForm(phone=number, formdata=None)
    status = 200 if code_form and not resend_error else 422
    number = code_form.phone.data if code_form else ""
    return render("auth/phone.html", "auth/_phone_form.html", status=status, form=form, code_form=code_form,
                  masked=mask_phone(number), resend_in=SmsCode.resend_wait(number) if number else 0,
                  resend_error=resend_error)


@login_required
def _phone_verify_again(refused):
    code_form = CodeForm()
    number = (code_form.phone.data or "").strip()
    return render("auth/phone.html", "auth/_phone_form.html", form=PhoneForm(phone=number, formdata=None),
                  code_form=refused.on(code_form), masked=mask_phone(number),
                  resend_in=SmsCode.resend_wait(number) if number else 0)


@bp.post("/phone/verify")
@form_page(_phone_verify_again)
@login_required
@limiter.limit("10 per minute", methods=["POST"])
def phone_verify():
    """Check the code; on success the number is attached to the account and marked verified."""
    code_form = CodeForm()
    number = (code_form.phone.data or "").strip()
    form = PhoneForm(phone=number, formdata=None)
    if code_form.validate_on_submit():
        try:
            verify_phone(current_user, number, code_form.code.data)
        except PhoneTaken as error:
            db.session.rollback()  # the code stays unused
            code_form.code.errors.append(domain_message(error))
        except DomainError as error:
            db.session.commit()  # keep the attempt count
            code_form.code.errors.append(domain_message(error))
        else:
            db.session.commit()
            flash(_("Your mobile number is verified."), "success")
            return render("auth/phone_done.html", "auth/_phone_done.html")
    return render("auth/phone.html", "auth/_phone_form.html", status=422, form=form, code_form=code_form,
                  masked=mask_phone(number), resend_in=SmsCode.resend_wait(number) if number else 0)


# -- SMS login, forgotten passwords --------------------------------------------------------
# Every code goes through SmsCode.issue (its caps: per number, per day, site budget); the routes
# add per-IP limits. A failed send or a wrong code keeps the code field while a code still works.


def _go(url: str):
    """Leave a page after a form: a plain redirect, or HX-Redirect when htmx sent the form (a
    302 would be followed inside the XHR and swap the next page into the form)."""
    if request.headers.get("HX-Request"):
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def _issue_code(number: str, purpose: str) -> tuple[bool, str | None]:
    """Text NUMBER a code for PURPOSE. Returns (code step to show, error): the code step stays
    when sending failed but an earlier code still works."""
    try:
        code = SmsCode.issue(number, purpose, requested_by=None, daily_budget=current_app.config["SMS_DAILY_BUDGET"])
    except DomainError as error:
        return SmsCode.live(number, purpose), domain_message(error)
    enqueue(send_sms_code, number, code, purpose)
    db.session.commit()
    return True, None


def _login_key() -> str:
    """Rate-limit key for forms naming an account: the login typed, so one address or number
    cannot be flooded from many IPs."""
    try:
        return "login:" + normalise_login(request.form.get("login") or request.form.get("phone") or "")[1]
    except DomainError:  # nothing valid typed: no account to protect, count per IP
        return "ip:" + (get_remote_address() or "?")


@bp.get("/login/sms")
def login_sms():
    """Log in with a mobile number and an SMS code (no password); a new number signs up."""
    if current_user.is_authenticated:
        return redirect(back_url(url_for("main.home")))
    return render_template("auth/login_sms.html", form=PhoneForm(), code_form=None)


def _sms_login_step(form, code_form, status, resend_error=None):
    number = code_form.phone.data if code_form else ""
    return render("auth/login_sms.html", "auth/_login_sms.html", status=status, form=form, code_form=code_form,
                  masked=mask_phone(number), new_account=bool(number) and User.find_by_login(number) is None,
                  resend_in=SmsCode.resend_wait(number) if number else 0, resend_error=resend_error)


def _sms_send_again(refused):
    return _sms_login_step(refused.on(PhoneForm()), None, 422)


@bp.post("/login/sms/send")
@form_page(_sms_send_again)
@limiter.limit("5 per minute; 20 per day", methods=["POST"])
@limiter.limit("10 per day", key_func=_login_key, methods=["POST"])
def login_sms_send():
    """Text a login code to the number typed; the code step replaces the number form."""
    if current_user.is_authenticated:
        return _go(back_url(url_for("main.home")))
    form = PhoneForm()
    code_form = None
    resend_error = None
    if form.validate_on_submit():
        _kind, number = normalise_login(form.phone.data)
        show_code, resend_error = _issue_code(number, "login")
        if show_code:
            code_form = SmsLoginForm(phone=number, formdata=None)
        else:
            form.phone.errors.append(resend_error)
            resend_error = None
    status = 200 if code_form and not resend_error else 422
    return _sms_login_step(form, code_form, status, resend_error)


def _sms_verify_again(refused):
    """The code step again when its page expired; a bad number or a form sent twice (the nonce)
    starts over at the number, saying why."""
    code_form = SmsLoginForm()
    number = (code_form.phone.data or "").strip()
    form = PhoneForm(phone=number, formdata=None)
    if refused.expired:
        return _sms_login_step(form, refused.on(code_form), 422)
    return _sms_login_step(refused.on(form, "phone"), None, 422)


@bp.post("/login/sms/verify")
@form_page(_sms_verify_again)
@limiter.limit("10 per minute; 100 per day", methods=["POST"])
def login_sms_verify():
    """Check the code and log in; a number without an account gets one once the privacy policy
    is accepted. The code proves the number: an account's unverified number becomes verified."""
    if current_user.is_authenticated:
        return _go(back_url(url_for("main.home")))
    code_form = SmsLoginForm()
    number = (code_form.phone.data or "").strip()
    form = PhoneForm(phone=number, formdata=None)
    _kind, number = normalise_login(number)  # refused: `_sms_verify_again` starts over at the number
    nonce = check_nonce(code_form.nonce.data)
    if code_form.validate_on_submit():
        user = User.find_by_login(number)
        if SmsCode.consumed_with(number, "login", nonce) and user is not None:
            return _log_in_by_code(user, remember=bool(code_form.remember.data), created=False)  # the same form twice
        if user is None and not code_form.consent.data:
            # Before the code is checked: accepting later must not cost an attempt.
            code_form.consent.errors.append(_("You need to agree to the privacy policy to sign up."))
        else:
            try:
                SmsCode.check(number, code_form.code.data, "login", nonce=nonce)
            except DomainError as error:
                db.session.commit()  # keep the attempt count
                code_form.code.errors.append(domain_message(error))
            else:
                created = user is None
                if created:
                    user = create_phone_account(
                        number, consent_version=current_app.config["PRIVACY_POLICY_VERSION"],
                        locale=request.cookies.get("lang") or None, device=device_id())
                    record_signup(user, source="sms_signup", ip=request.remote_addr, now=user.consent_at)
                    record_invitation(user, request.cookies.get("invite", ""))
                    notify(user, "welcome", {"nickname": user.nickname}, link=url_for("communities.index"))
                elif user.mark_phone_verified():
                    notify(user, "phone_verified", {"phone": mask_phone(number)})
                db.session.commit()
                return _log_in_by_code(user, remember=bool(code_form.remember.data), created=created)
    return _sms_login_step(form, code_form, 422)


def _log_in_by_code(user: User, *, remember: bool, created: bool):
    login_user(user, remember=remember)
    if created:
        flash(_("Welcome to Cheyou! Your mobile number is verified. Join the communities that fit you."), "success")
        response = _go(url_for("communities.index"))
        remember_device(response, user.signup_device or device_id())
        response.delete_cookie("invite")
        return response
    return _go(back_url(url_for("main.home")))


def _forgot_again(refused):
    return _forgot_step(refused.on(ForgotForm()), None, 422)


@bp.route("/forgot", methods=["GET", "POST"])
@form_page(_forgot_again)
@limiter.limit("5 per minute; 30 per day", methods=["POST"])
@limiter.limit("5 per hour; 10 per day", key_func=_login_key, methods=["POST"])
def forgot():
    """Forgotten password: a mobile number gets a code by SMS, an e-mail address a link.

    Texts cost money, so a number without an account is told so (signup says the same about a
    taken number); the e-mail path answers the same whether or not the address has an account."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.password"))
    form = ForgotForm(login=request.args.get("login", ""))
    code_form = None
    resend_error = None
    mailed = False
    if form.validate_on_submit():
        kind, value = form.login.kind, form.login.canonical
        if kind == "email":
            user = User.find_by_login(value)
            if user is not None:
                site = current_app.config.get("SITE_URL") or request.host_url
                enqueue(send_password_reset_mail, user.id, site, str(get_locale() or "zh_CN"))
                db.session.commit()
            mailed = True
        elif User.find_by_login(value) is None:
            form.login.errors.append(_("No account uses this mobile number. Sign up, or log in with an SMS code."))
        else:
            show_code, resend_error = _issue_code(value, "reset")
            if show_code:
                code_form = ResetCodeForm(phone=value, formdata=None)
            else:
                form.login.errors.append(resend_error)
                resend_error = None
    failed = request.method == "POST" and not (mailed or (code_form and not resend_error))
    return _forgot_step(form, code_form, 422 if failed else 200, resend_error, mailed=mailed)


def _forgot_step(form, code_form, status, resend_error=None, mailed=False):
    number = code_form.phone.data if code_form else ""
    return render("auth/forgot.html", "auth/_forgot.html", status=status, form=form, code_form=code_form,
                  masked=mask_phone(number), resend_in=SmsCode.resend_wait(number) if number else 0,
                  resend_error=resend_error, mailed=mailed)


def _forgot_reset_again(refused):
    """The code step again when its page expired; a bad number or a form sent twice (the nonce)
    starts over at the login, saying why."""
    code_form = ResetCodeForm()
    number = (code_form.phone.data or "").strip()
    form = ForgotForm(login=number, formdata=None)
    if refused.expired:
        return _forgot_step(form, refused.on(code_form), 422)
    return _forgot_step(refused.on(form, "login"), None, 422)


@bp.post("/forgot/reset")
@form_page(_forgot_reset_again)
@limiter.limit("10 per minute; 50 per day", methods=["POST"])
@reads_first
def forgot_reset():
    """Check the texted code and set the new password: other sessions end, this one logs in."""
    if current_user.is_authenticated:
        return _go(url_for("main.home"))
    code_form = ResetCodeForm()
    number = (code_form.phone.data or "").strip()
    form = ForgotForm(login=number, formdata=None)
    _kind, number = normalise_login(number)  # refused: `_forgot_reset_again` starts over at the login
    nonce = check_nonce(code_form.nonce.data)
    if code_form.validate_on_submit():
        hashed = User.hash_password(code_form.password.data)  # the slow part, before the write lock
        begin_write()
        user = User.find_by_login(number)
        if user is not None and SmsCode.consumed_with(number, "reset", nonce):
            login_user(user)  # the same form sent twice: the first one changed the password
            return _go(url_for("main.home"))
        try:
            SmsCode.check(number, code_form.code.data, "reset", nonce=nonce)
        except DomainError as error:
            db.session.commit()  # keep the attempt count
            code_form.code.errors.append(domain_message(error))
        else:
            if user is None:  # deleted meanwhile
                code_form.code.errors.append(_("No account uses this mobile number. Sign up, or log in with an SMS code."))
            else:
                lock_member(user)
                _reset_password(user, hashed)
                user.mark_phone_verified()  # the code proves the number
                db.session.commit()
                login_user(user)
                flash(_("Your password is changed and you are logged in. Other devices have been signed out."), "success")
                return _go(url_for("main.home"))
    return _forgot_step(form, code_form, 422)


def _reset_password(user: User, hashed: str) -> None:
    user.change_password(hashed)  # a new session token: every other session ends
    notify(user, "password_changed")


def _reset_again(refused, token):
    """The new-password form again when its page expired; else the link is dead (expired, used,
    forged): say so instead of a form that cannot work, 410 when opened, 422 when sent."""
    if refused.expired:
        return render_template("auth/reset.html", form=refused.on(NewPasswordForm()), error=None)
    return render_template("auth/reset.html", form=None, error=refused.message), 410 if request.method == "GET" else 422


@bp.route("/reset/<token>", methods=["GET", "POST"])
@form_page(_reset_again)
@limiter.limit("10 per minute; 50 per day", methods=["POST"])
@reads_first
def reset(token):
    """Set a new password from an e-mailed link (1 hour, single use); then this device logs in."""
    secret = current_app.config["SECRET_KEY"]
    user = User.from_reset_token(token, secret)  # a dead link: `_reset_again` says so
    form = NewPasswordForm()
    if form.validate_on_submit():
        hashed = User.hash_password(form.password.data)  # the slow part, before the write lock
        begin_write()
        lock_member(user)
        db.session.refresh(user)
        user = User.from_reset_token(token, secret)  # re-read under the lock: a link works once
        _reset_password(user, hashed)
        db.session.commit()
        logout_user()
        login_user(user)
        flash(_("Your password is changed and you are logged in. Other devices have been signed out."), "success")
        return redirect(url_for("main.home"))
    return render_template("auth/reset.html", form=form, error=None), 422 if request.method == "POST" else 200
