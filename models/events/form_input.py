"""What the organizer's form hands the model (`EventInput`), the defaults for what was left
empty, and the rules of a well-formed event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from models import N_, DomainError
from models.events.model import (
    DESCRIPTION_MAX, KINDS, MAX_ATTENDANCE_POINTS, MAX_CAPACITY, MAX_COMPANIONS, MAX_PRICE, TITLE_MAX, TITLE_MIN,
)

# Maps Chinese phones open (Amap 高德, Baidu 百度): Google Maps does not load in China.
MAP_HOSTS = ("amap.com", "map.baidu.com")
# Left empty, signup closes 2 h and free cancellation ends 24 h before the start.
SIGNUP_CLOSES_BEFORE = timedelta(hours=2)
CANCEL_DEADLINE_BEFORE = timedelta(hours=24)


@dataclass
class EventInput:
    community: object
    kind: str
    title: str
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    place: str
    address: str
    map_url: str
    capacity: int | None
    companions_allowed: int
    signup_opens_at: datetime | None
    signup_closes_at: datetime | None
    cancel_deadline: datetime | None
    points_price: int = 0
    attendance_points: int = 0
    level_priority: bool = True
    safety_notice: str = ""
    cover_key: str | None = None
    cover_thumb_key: str | None = None

    def __post_init__(self):
        if self.starts_at is not None:
            self.signup_closes_at = self.signup_closes_at or self.starts_at - SIGNUP_CLOSES_BEFORE
            self.cancel_deadline = self.cancel_deadline or self.starts_at - CANCEL_DEADLINE_BEFORE


def default_map_url(address: str) -> str:
    """An Amap search for the address, when the organizer gives no link."""
    return "https://uri.amap.com/search?keyword=" + quote(address)


def check_map_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not any(host == h or host.endswith("." + h) for h in MAP_HOSTS):
        raise DomainError(N_("Use an Amap (高德) or Baidu map link starting with https://."))
    return url


def validate_event(data: EventInput) -> None:
    """The rules of a well-formed event, with messages organizers understand."""
    title = (data.title or "").strip()
    if not TITLE_MIN <= len(title) <= TITLE_MAX:
        raise DomainError(N_("A title has %(min)s to %(max)s characters."), min=TITLE_MIN, max=TITLE_MAX)
    if data.kind not in KINDS:
        raise DomainError(N_("Choose a kind of event from the list."))
    if len(data.description or "") > DESCRIPTION_MAX:
        raise DomainError(N_("The description can be at most %(max)s characters."), max=DESCRIPTION_MAX)
    if not all((data.starts_at, data.ends_at, data.signup_opens_at, data.signup_closes_at, data.cancel_deadline)):
        raise DomainError(N_("Fill in every date and time."))
    if data.ends_at <= data.starts_at:
        raise DomainError(N_("The end must be after the start."))
    if data.signup_closes_at <= data.signup_opens_at:
        raise DomainError(N_("Signup must close after it opens."))
    if data.signup_closes_at > data.starts_at:
        raise DomainError(N_("Signup must close before the event starts."))
    if data.cancel_deadline > data.starts_at:
        raise DomainError(N_("The cancellation deadline must be before the event starts."))
    if not (data.place or "").strip() or not (data.address or "").strip():
        raise DomainError(N_("Give the place and its address."))
    if data.capacity is None or not 1 <= data.capacity <= MAX_CAPACITY:
        raise DomainError(N_("Capacity is between 1 and %(max)s people."), max=MAX_CAPACITY)
    if not 0 <= data.companions_allowed <= MAX_COMPANIONS:
        raise DomainError(N_("Each member may bring 0 to %(max)s companions."), max=MAX_COMPANIONS)
    if not 0 <= data.points_price <= MAX_PRICE:
        raise DomainError(N_("The points price is between 0 and %(max)s."), max=MAX_PRICE)
    if not 0 <= data.attendance_points <= MAX_ATTENDANCE_POINTS:
        raise DomainError(N_("The attendance reward is between 0 and %(max)s points."), max=MAX_ATTENDANCE_POINTS)
    if data.kind == "road_trip" and len((data.safety_notice or "").strip()) < 10:
        raise DomainError(N_("A road trip needs a safety notice (at least 10 characters) for members to accept."))
