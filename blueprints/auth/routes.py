"""Sign up, log in, log out, password change and mobile verification."""
from __future__ import annotations

import secrets

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app import csrf, limiter
from blueprints.transactions import begin_write, reads_first
from blueprints.access import back_url
from blueprints.auth.forms import CodeForm, LoginForm, PasswordForm, PhoneForm, SignupForm
from blueprints.web import domain_message, render
from models import DomainError, SmsCode, User, db, notify
from models.accounts import mask_phone, normalise_login
from models.content_filter import screen
from models.referrals import record_invitation
from models.types import utcnow
from services.jobs import enqueue
from services.tasks import send_sms_code

bp = Blueprint("auth", __name__)

# Form views validate the CSRF token through FlaskForm, so an expired token re-renders the
# form with what was typed and a clear message instead of a bare 400 page.


DEVICE_COOKIE = "cy_device"


def device_id() -> str:
    """This browser's long-lived random id (the referral heuristic compares them)."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return value if len(value) == 32 and value.isalnum() else secrets.token_hex(16)


def remember_device(response, value: str) -> None:
    response.set_cookie(DEVICE_COOKIE, value, max_age=60 * 60 * 24 * 365 * 2, samesite="Lax", httponly=True)


@bp.route("/signup", methods=["GET", "POST"])
@csrf.exempt
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


@bp.route("/login", methods=["GET", "POST"])
@csrf.exempt
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


@bp.route("/password", methods=["GET", "POST"])
@csrf.exempt
@login_required
@limiter.limit("10 per hour", methods=["POST"])
@reads_first
def password():
    """Change the password; every other session ends."""
    form = PasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
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


@bp.post("/phone/send")
@csrf.exempt
@login_required
@limiter.limit("5 per minute; 20 per day", methods=["POST"])
def phone_send():
    """Send a code to the number typed; the code form replaces the number form."""
    form = PhoneForm()
    code_form = None
    if form.validate_on_submit():
        _kind, number = normalise_login(form.phone.data)
        owner = User.find_by_login(number)
        if owner is not None and owner.id != current_user.id:
            form.phone.errors.append(_("This number belongs to another account."))
        elif current_user.phone == number and current_user.phone_verified:
            form.phone.errors.append(_("This number is already verified."))
        else:
            try:
                code = SmsCode.issue(number, "verify", requested_by=current_user,
                                     daily_budget=current_app.config["SMS_DAILY_BUDGET"])
            except DomainError as error:
                form.phone.errors.append(domain_message(error))
            else:
                enqueue(send_sms_code, number, code, "verify")
                db.session.commit()
                code_form = CodeForm(phone=number, formdata=None)
    status = 200 if code_form else 422
    return render("auth/phone.html", "auth/_phone_form.html", status=status, form=form, code_form=code_form,
                  masked=mask_phone(code_form.phone.data) if code_form else "")


@bp.post("/phone/verify")
@csrf.exempt
@login_required
@limiter.limit("10 per minute", methods=["POST"])
def phone_verify():
    """Check the code; on success the number is attached to the account and marked verified."""
    code_form = CodeForm()
    number = (code_form.phone.data or "").strip()
    form = PhoneForm(phone=number, formdata=None)
    if code_form.validate_on_submit():
        try:
            SmsCode.check(number, code_form.code.data)
        except DomainError as error:
            db.session.commit()  # keep the attempt count
            code_form.code.errors.append(domain_message(error))
        else:
            owner = User.find_by_login(number)
            if owner is not None and owner.id != current_user.id:
                code_form.code.errors.append(_("This number belongs to another account."))
            else:
                current_user.phone = number
                current_user.phone_verified_at = utcnow()
                notify(current_user, "phone_verified", {"phone": mask_phone(number)})
                db.session.commit()
                flash(_("Your mobile number is verified."), "success")
                return render("auth/phone_done.html", "auth/_phone_done.html")
    return render("auth/phone.html", "auth/_phone_form.html", status=422, form=form, code_form=code_form,
                  masked=mask_phone(number))
