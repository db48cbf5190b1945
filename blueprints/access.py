"""The one place roles are checked: `@role_required(...)`, `can(...)` and the event loader
`event_or_404(...)`; and where a request may send the browser next: `safe_path(...)` and
`back_url(...)`."""
from __future__ import annotations

import unicodedata
from functools import wraps
from urllib.parse import unquote, urlsplit

from flask import abort, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload

from models import db
from models.events import Event, can_manage


def can(role: str, community=None, partner=None) -> bool:
    """Whether the current account holds ROLE (scoped to COMMUNITY or PARTNER when given)."""
    return bool(current_user.is_authenticated and current_user.has_role(role, community=community, partner=partner))


def role_required(*roles: str):
    """Require a signed-in account holding any of ROLES (in any scope; views narrow the scope)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not any(current_user.has_role(r) for r in roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def json_error(status: int, message: str):
    """An error as JSON for fetch() callers (never cached): {"error": status, "message": …}."""
    response = jsonify(error=status, message=message)
    response.status_code = status
    response.headers["Cache-Control"] = "private, no-store"
    return response


def event_or_404(event_id: int, manage: bool = False, as_json: bool = False) -> Event:
    """The event for any event route, member, organizer, check-in or JSON alike.

    Missing, or not visible to the viewer (`Event.visible_to`: a draft) → 404. With MANAGE the
    viewer must manage it (`can_manage`) → else 403, drafts included: organizer routes are
    role-gated already, so they reveal nothing. AS_JSON answers with a JSON body (401 when
    signed out) for fetch() calls, which must not land on the login page."""
    def refuse(status: int, message: str):
        abort(json_error(status, message) if as_json else status)

    if as_json and not current_user.is_authenticated:
        refuse(401, _("Your session has ended. Log in again to sync."))
    event = db.session.get(Event, event_id, options=[joinedload(Event.community), joinedload(Event.organizer)])
    if event is None or not (manage or event.visible_to(current_user)):
        refuse(404, _("The page you are looking for does not exist or was removed."))
    if manage and not can_manage(current_user, event):
        refuse(403, _("Your account does not have access to this page."))
    return event


def wants_fragment() -> bool:
    """An htmx swap (not a boosted navigation nor a history restore) wants only the fragment."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def _as_a_browser_reads(url: str) -> str:
    """URL as a browser resolves it: it drops tab, CR and LF anywhere and trims leading C0
    controls and spaces, and reads `\\` as `/`. We drop every control and format character
    (zero-width, bidi) and trim Unicode spaces too, so what we check is what is followed."""
    kept = "".join(ch for ch in url if unicodedata.category(ch)[0] != "C")
    return kept.strip().replace("\\", "/")


def _on_this_host(url: str) -> bool:
    # One leading slash is a path on this host; `//x` (and so `/\x`) is another host, and
    # anything else is either a scheme (`https:`, `javascript:`) or relative to the page.
    return url.startswith("/") and not url.startswith("//") and not urlsplit(url).netloc


def safe_path(target: str | None, default: str | None) -> str | None:
    """TARGET if it is a path on this site (query string allowed), else DEFAULT.

    The only way `next=` and similar parameters may choose a redirect: an open redirect lends
    our domain to phishing links. Percent-decoding must not reveal another host either
    (`/%2F%2Fevil.example`, `/%09/evil.example`, `/%5Cevil.example`): some proxies and
    clients decode before they resolve, so each decoding is checked as well."""
    if not target:
        return default
    cleaned = _as_a_browser_reads(target)
    decoded = cleaned
    for _ in range(4):  # nested encodings (%252F) unwrap one level per decoding
        if not _on_this_host(decoded):
            return default
        again = _as_a_browser_reads(unquote(decoded))
        if again == decoded:
            return cleaned
        decoded = again
    return default  # encoded deeper than any link we make


def back_url(default: str, referrer: bool = False) -> str:
    """Where a form sends the browser back to: its `next` field (or parameter) if that is a path
    on this site, else with REFERRER the page the form was on if it is on this host, else DEFAULT."""
    target = safe_path(request.values.get("next"), None)
    if target is None and referrer and request.referrer:
        parts = urlsplit(request.referrer)
        if parts.scheme in ("http", "https") and parts.netloc == request.host:
            target = safe_path(parts.path + (f"?{parts.query}" if parts.query else ""), None)
    return target or default
