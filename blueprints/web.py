"""Cross-cutting web behaviour: login loading, security headers, caching, errors, template helpers."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Callable
from functools import lru_cache
from pathlib import Path

from flask import Flask, current_app, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from blueprints.access import safe_path, wants_fragment
from blueprints.activity import init_activity
from blueprints.fragments import init_fragments
from blueprints.points_cache import init_points_cache
from blueprints.i18n import LOCALES, html_lang
from blueprints.times import init_times
from extensions import login_manager
from models import DomainError, Notification, User, db
from models.nonces import new_nonce

log = logging.getLogger("cheyou.web")

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """One URL, two renderings: only FRAGMENT for an htmx swap, else the full PAGE."""
    template = fragment if fragment and wants_fragment() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def coming_soon(title: str, blurb: str):
    """The friendly page a tab shows until its capability lands."""
    return render_template("main/coming_soon.html", title=title, blurb=blurb)


# A signed-in page the service worker may keep on this device for offline use (tickets, the
# check-in page): it is still `private, no-store` for every HTTP cache, and logout's
# Clear-Site-Data wipes the service worker's copy along with everything else.
OFFLINE_HEADER = "X-Cheyou-Offline"


def keep_offline(response):
    response.headers[OFFLINE_HEADER] = "keep"
    return response


BUSY_RETRY_AFTER = 5  # seconds, in the 503's Retry-After


def is_busy(error: OperationalError) -> bool:
    """A transient refusal that the same request can retry: SQLite's "database is locked" after
    the busy timeout, PostgreSQL's deadlock or serialization failure (one side is rolled back)."""
    message = str(getattr(error, "orig", error)).lower()
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return "database is locked" in message or "database is busy" in message or code in ("40P01", "40001")


def domain_message(error: DomainError) -> str:
    """A DomainError's message in the reader's language, with its parameters filled in."""
    return _(error.message, **error.params)


# -- a refused form is shown again, with what was typed ---------------------------------------
# A form view declares how its page is shown again (`@form_page(show)`); the CSRF and DomainError
# handlers below look it up by the request's endpoint. So views neither exempt themselves from
# CSRFProtect nor repeat a rollback-and-422 block.

EXPIRED_HEADER = "X-Cheyou-Form-Expired"  # app.js swaps such a 400 in (htmx leaves 4xx out)


@dataclass(frozen=True)
class Refusal:
    """Why a form page is shown again instead of saved: its page expired (the CSRF token was
    refused, 400, and the view never ran) or a rule said no (a DomainError, 422, rolled back)."""

    message: str
    status: int
    field: str | None = None

    @property
    def expired(self) -> bool:
        return self.status == 400

    def on(self, form, field: str | None = None):
        """FORM with the message on it: the expired notice (the `form_errors` macro), else under
        the field the error names, else under FIELD, else above the form."""
        if self.expired and "csrf_token" in form:
            form.csrf_token.errors = [self.message]
            return form
        target = form._fields.get(self.field or field or "")
        if target is not None:
            target.errors = [*target.errors, self.message]
        else:
            form.form_errors.append(self.message)
        return form


@dataclass(frozen=True)
class RefusedPage:
    show: Callable  # show(refusal, **view_args) -> the page or fragment, from request.form
    when_expired: bool  # False: a stale token gets the plain "page expired" page


def form_page(show: Callable):
    """Declare how this form view's page is shown again when a stale CSRF token or a
    DomainError refuses it. SHOW(refusal, **view_args) rebuilds the form(s) from `request.form`,
    puts `refusal` on them (`refusal.on(form)`) and renders what the view renders. It never
    saves, and it applies the view's own access checks: after a stale token the view (and its
    decorators) did not run, only the blueprint's before_request guards are run for it."""

    def decorator(view):
        view.refused_page = RefusedPage(show, when_expired=True)
        return view

    return decorator


def domain_errors(show: Callable):
    """`form_page` for a DomainError only: a button or small inline form, whose stale token keeps
    the plain "page expired" page."""

    def decorator(view):
        view.refused_page = RefusedPage(show, when_expired=False)
        return view

    return decorator


def _refused_page() -> RefusedPage | None:
    return getattr(current_app.view_functions.get(request.endpoint), "refused_page", None)


def _blueprint_guards():
    """The blueprints' before_request checks (administrators only, signed in only), which
    CSRFProtect's refusal came before: a response (to the login page) or None to go on."""
    for name in reversed(request.blueprints):
        for guard in current_app.before_request_funcs.get(name, ()):
            response = guard()
            if response is not None:
                return response
    return None


def _show_again(page: RefusedPage, refusal: Refusal, guards: bool = False):
    try:
        response = (guards and _blueprint_guards()) or page.show(refusal, **(request.view_args or {}))
    except HTTPException as error:  # the access checks said no: answer as the view would have
        return current_app.handle_http_exception(error)
    response = make_response(response)
    if response.status_code in (200, 422):  # the page itself, not a redirect or a refusal of access
        response.status_code = refusal.status
        if refusal.expired:
            response.headers[EXPIRED_HEADER] = "1"
    response.vary.add("HX-Request")
    return response


@lru_cache(maxsize=512)
def _file_hash(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def static_version(app: Flask, filename: str) -> str:
    path = Path(app.static_folder) / filename
    try:
        return _file_hash(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        return "0"


def asset_version(app: Flask) -> str:
    """One hash over every static file: it changes the service worker, so a new version installs."""
    digest = hashlib.sha256()
    root = Path(app.static_folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(static_version(app, str(path.relative_to(root))).encode())
    sw = Path(app.root_path) / "templates" / "sw.js"
    digest.update(sw.read_bytes())
    return digest.hexdigest()[:12]


def init_web(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    # No session protection: "basic" only marks a session non-fresh (nothing here asks for a
    # fresh login), and doing so rewrote a visitor's cookie on their second request: such a
    # request still running when the login answered (the service worker's precache, say) set the
    # old anonymous cookie back and logged the member out again. "strong" would log out a phone
    # whenever its network changes.
    login_manager.session_protection = None

    @login_manager.user_loader
    def load_user(session_id: str):
        return User.from_session_id(session_id)

    @login_manager.unauthorized_handler
    def unauthorized():
        # Only a path on this site travels as next= (None leaves it out of the URL).
        login_url = url_for("auth.login", next=safe_path(request.full_path.rstrip("?"), None))
        if request.headers.get("HX-Request"):
            # A 302 would swap the login page into a card: tell htmx to navigate instead.
            response = make_response("", 401)
            response.headers["HX-Redirect"] = login_url
            return response
        return redirect(login_url)

    static_urls: dict[str, str] = {}

    def static_url(filename: str) -> str:
        """/static/FILE?v=HASH. Kept per process (a deploy restarts it); the debug server looks
        again each time, so an edited file shows at once. A page of comments asks for the icon
        sprite 400 times, and each look is a stat() and a url_for."""
        url = None if app.debug else static_urls.get(filename)
        if url is None:
            url = static_urls[filename] = url_for("static", filename=filename, v=static_version(app, filename))
        return url

    @app.context_processor
    def template_helpers():
        unread = 0
        if current_user.is_authenticated:
            unread = Notification.unread_count(current_user)
        return {
            "static_url": static_url,
            "icp_number": app.config["ICP_NUMBER"],
            "locales": LOCALES,
            "current_locale": str(get_locale() or "zh_CN"),
            "html_lang": html_lang(get_locale() or "zh_CN"),
            "unread_count": unread,
            "csrf_token": generate_csrf,
            "new_nonce": new_nonce,
        }

    @app.template_filter("datetime")
    def _format_datetime(value, fmt="medium"):
        return format_datetime(value, fmt) if value else ""

    init_fragments(app)  # `cached_fragment`: story and community cards, comments rendered once per content
    init_times(app)  # `ago`: every past moment members see (刚刚, 5 分钟前, 昨天 14:20)
    init_activity(app)  # a signed-in member's day, recorded once (models/activity.py)
    init_points_cache(app)  # standings a page derived past the cache, stored after it (models/loyalty)

    @app.after_request
    def buffer_static_files(response):
        # Static files are small; read them into the response so Flask-Compress compresses
        # them whole (its streaming path leaves the file open) and phones download less.
        if request.endpoint == "static" and response.status_code == 200 and response.is_streamed:
            response.direct_passthrough = False
            body = b"".join(response.response)
            response.response.close()
            response.set_data(body)
        return response

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Permissions-Policy", "camera=(self), geolocation=(), microphone=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.path.startswith("/static/") and request.args.get("v"):
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        elif response.mimetype == "text/html" and "Cache-Control" not in headers:
            # Signed-in pages are personal: no cache (the service worker included) may keep them.
            headers["Cache-Control"] = "private, no-store" if current_user.is_authenticated else "no-cache"
            response.vary.add("Cookie")
        return response

    def error_page(status: int, title: str, message: str):
        if request.path.startswith("/healthz") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=title, message=message), status
        return render("error.html", "_partials/error.html", status=status, code=status, title=title, message=message)

    @app.errorhandler(CSRFError)
    def csrf_error(_error):
        page = _refused_page()
        if page is not None and page.when_expired:
            # The view did not run: its form comes back from what was sent, with a fresh token.
            db.write_intent.set(False)  # nor did the hook marking writes: this answer only reads
            expired = _("This page was open for too long. What you typed is kept: please submit again.")
            return _show_again(page, Refusal(expired, 400), guards=True)
        return error_page(
            400,
            _("This page has expired"),
            _("The page was open for too long or your session changed. Go back, reload the page and try again."),
        )

    @app.errorhandler(DomainError)
    def domain_refused(error):
        # A rule refused what the view was saving: nothing of it stays, the form comes back.
        db.session.rollback()
        page = _refused_page()
        if page is None:
            raise error  # a view that declares no page for it: a bug, as before (500)
        return _show_again(page, Refusal(domain_message(error), 422, getattr(error, "field", None)))

    @app.errorhandler(400)
    def bad_request(_error):
        return error_page(400, _("Bad request"), _("The request could not be understood. Please try again."))

    @app.errorhandler(403)
    def forbidden(_error):
        return error_page(403, _("Not allowed"), _("Your account does not have access to this page."))

    @app.errorhandler(404)
    def not_found(_error):
        return error_page(404, _("Page not found"), _("The page you are looking for does not exist or was removed."))

    @app.errorhandler(405)
    def method_not_allowed(_error):
        return error_page(405, _("Not allowed"), _("This action is not available here."))

    @app.errorhandler(413)
    def too_large(_error):
        return error_page(413, _("File too large"), _("The upload is too large. Please choose a smaller file."))

    @app.errorhandler(429)
    def too_many(_error):
        return error_page(429, _("Too many attempts"), _("You are doing that too often. Please wait a minute and try again."))

    @app.errorhandler(OperationalError)
    def database_busy(error):
        # The database stayed busy past the busy timeout (SQLite's lock, PostgreSQL's deadlock
        # victim): the request was rolled back whole, so the member can simply send it again.
        if not is_busy(error):
            raise error
        db.session.rollback()
        db.write_intent.set(False)  # the error page only reads: it must not queue for the lock again
        log.error("database busy on %s %s: %s", request.method, request.path, error.orig)
        response = error_page(503, _("We are very busy"),
                              _("Many members are doing the same thing right now. Nothing was saved: wait a few "
                                "seconds and try again."))
        response.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
        return response

    @app.errorhandler(500)
    def server_error(error):
        db.session.rollback()
        log.error("unhandled error on %s", request.path, exc_info=getattr(error, "original_exception", error))
        return error_page(500, _("Something went wrong"), _("We hit a problem on our side. Please try again in a moment."))
