"""The one place roles are checked: `@role_required(...)` and `can(...)`."""
from __future__ import annotations

from functools import wraps

from flask import abort, request
from flask_login import current_user, login_required


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


def wants_fragment() -> bool:
    """An htmx swap (not a boosted navigation nor a history restore) wants only the fragment."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
