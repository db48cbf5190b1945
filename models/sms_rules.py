"""When a notice may go out by SMS: the rules around the SMS channel (services/sms.py sends).

- Only kinds flagged for SMS (each kind's `sms` in models/notifications.py KINDS; `SMS_KINDS`).
- At most `SMS_NOTICES_PER_DAY` (default 2) notices per member per Shanghai day: texts cost
  money and a phone that buzzes all day gets the sender blocked. Verification codes are apart.
- Marketing (the `campaigns` category) only to members who opted in (`may_send_marketing`),
  with the carriers' opt-out wording and a one-tap unsubscribe link (`unsubscribe_token`).
- Never 21:00–08:00 Shanghai time: a notice due then waits until 08:00 (`next_allowed_send`),
  it is not dropped. The inbox has it at once anyway.

`queue_sms(delivery_id)` queues the job that sends an SMS delivery row (`services.tasks.
send_sms_notice`, by name: models never import services) at the first allowed moment.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select

from models import db
from models.notifications import KINDS, Notification
from models.outbox import enqueue
from models.push import Delivery
from models.types import SHANGHAI, shanghai_day, shanghai_midnight, utcnow

SEND_JOB = "services.tasks.send_sms_notice"
QUIET_START = time(21, 0)  # Shanghai: from 21:00 ...
QUIET_END = time(8, 0)  # ... to 08:00 no notice is texted
DEFAULT_PER_DAY = 2
UNSUBSCRIBE_SALT = "sms-unsubscribe"


def next_allowed_send(now: datetime) -> datetime:
    """NOW itself outside quiet hours; otherwise the coming 08:00 Shanghai (as aware UTC)."""
    local = now.astimezone(SHANGHAI)
    if QUIET_END <= local.time() < QUIET_START:
        return now
    day = local.date() if local.time() < QUIET_END else local.date() + timedelta(days=1)
    return datetime.combine(day, QUIET_END, tzinfo=SHANGHAI).astimezone(now.tzinfo or SHANGHAI)


def is_marketing(kind: str) -> bool:
    entry = KINDS.get(kind)
    return entry is not None and entry.category == "campaigns"


def may_send_marketing(member) -> bool:
    """Whether MEMBER opted in to marketing (the consent record keeps its history)."""
    return bool(member is not None and member.marketing_opt_in)


def daily_cap() -> int:
    return int(current_app.config.get("SMS_NOTICES_PER_DAY") or DEFAULT_PER_DAY)


def sent_today(member, now: datetime | None = None, besides: Delivery | None = None) -> int:
    """SMS notices texted to MEMBER since Shanghai midnight, or being texted (a queued row
    whose send began: `sent_at` set); BESIDES, the row asking, does not count itself."""
    since = shanghai_midnight(shanghai_day(now or utcnow()))
    query = (
        select(func.count()).select_from(Delivery).join(Notification, Notification.id == Delivery.notification_id)
        .where(Notification.user_id == member.id, Delivery.channel == "sms",
               Delivery.status.in_(("sent", "queued")), Delivery.sent_at >= since)
    )
    if besides is not None:
        query = query.where(Delivery.id != besides.id)
    return db.session.scalar(query)


def refusal(member, kind: str, now: datetime | None = None, besides: Delivery | None = None) -> str | None:
    """Why a notice of KIND may not be texted to MEMBER now (None: it may). Quiet hours are not a
    refusal: they only delay (`next_allowed_send`)."""
    entry = KINDS.get(kind)
    if entry is None or not entry.sms:
        return "kind not sent by SMS"
    if not (member.phone and member.phone_verified_at is not None):
        return "no verified mobile number"
    if is_marketing(kind) and not may_send_marketing(member):
        return "no marketing consent"
    if sent_today(member, now, besides) >= daily_cap():
        return "daily SMS limit reached"
    return None


def queue_sms(delivery_id: int, now: datetime | None = None):
    """Queue the sending of an SMS delivery row (in the caller's transaction) for the first
    moment outside quiet hours; a second call for the same row is a no-op."""
    now = now or utcnow()
    at = next_allowed_send(now)
    return enqueue(SEND_JOB, delivery_id, run_at=at if at > now else None, key=f"sms:{delivery_id}")


# -- the one-tap unsubscribe link ---------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(member) -> str:
    """A signed, short token naming MEMBER: its link turns marketing off without signing in.
    It does nothing else, so it need not expire (an old text's link keeps working)."""
    return _serializer().dumps(member.id)


def member_id_from_token(token: str) -> int | None:
    """The member id a token names, or None when it was not signed by us (tampered, truncated)."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None
