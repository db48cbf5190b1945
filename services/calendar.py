"""An event as an iCalendar file (.ics) members add to their phone's calendar.

Times are written in Asia/Shanghai with a VTIMEZONE, not in UTC: a calendar app then shows
the meetup at the local time printed on the poster, whatever zone the phone is set to.
"""
from __future__ import annotations

from html import unescape
import re

import nh3
from icalendar import Calendar, Event as VEvent

from models.types import SHANGHAI, utcnow

PRODID = "-//Cheyou//Events//ZH"


def plain_text(markup: str) -> str:
    """The sanitized description HTML as plain text for the calendar's notes."""
    text = re.sub(r"</(p|li|h[1-6]|blockquote|pre)>|<br\s*/?>", "\n", markup or "", flags=re.I)
    text = unescape(nh3.clean(text, tags=set()))  # strip every remaining tag, then the entities
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def event_ics(event, url: str) -> bytes:
    """EVENT as a one-event calendar; URL is the event page (added to the notes as well)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")

    vevent = VEvent()
    # Stable per event: re-importing updates the entry instead of adding a second one.
    vevent.add("uid", f"event-{event.id}@cheyou")
    vevent.add("dtstamp", utcnow())
    vevent.add("last-modified", event.updated_at)
    vevent.add("dtstart", event.starts_at.astimezone(SHANGHAI))
    vevent.add("dtend", event.ends_at.astimezone(SHANGHAI))
    vevent.add("summary", event.title)
    vevent.add("location", f"{event.place}, {event.address}")
    description = plain_text(event.description_html)
    vevent.add("description", f"{description}\n\n{url}" if description else url)
    vevent.add("url", url)
    if event.status == "cancelled":
        vevent.add("status", "CANCELLED")
    else:
        vevent.add("status", "CONFIRMED")
    cal.add_component(vevent)
    cal.add_missing_timezones()
    return cal.to_ical()
