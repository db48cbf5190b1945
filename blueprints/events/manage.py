"""Events for organizers: create, edit, publish, cancel, complete; their events with fill and
attendance rates; the roster and its CSV export."""
from __future__ import annotations

from blueprints.events.routes import bp  # noqa: F401
