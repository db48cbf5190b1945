"""Venue check-in for organizers: camera or typed code, and an offline queue synced later."""
from __future__ import annotations

from blueprints.events.routes import bp  # noqa: F401
