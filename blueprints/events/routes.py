"""Events for members: the listing, an event's page, signup and cancellation, the calendar file."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("events", __name__)


@bp.get("")
def index():
    """Upcoming events, filtered by community and month."""
    raise NotImplementedError  # helper A


from blueprints.events import checkin  # noqa: E402,F401
from blueprints.events import manage  # noqa: E402,F401
