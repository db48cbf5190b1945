"""Web Push devices and the delivery record of every notification on every channel.

A member's browser (one per device) subscribes with the Push API; we keep its endpoint and
keys in `push_subscriptions`, with a readable label and the categories it takes. Sending is a
service (services/push.py); what a member may subscribe, and which endpoints the server will
ever call, are rules, so they live here.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from models import DomainError, N_, db
from models.types import UTCDateTime, utcnow

# The categories every notification kind belongs to (models/notifications.py KINDS), in the
# order the switches are shown; a new device takes all of them.
CATEGORIES = ("events", "replies", "loyalty", "account", "campaigns")
CATEGORY_LABELS = {
    "events": N_("Events"),
    "replies": N_("Comments and replies"),
    "loyalty": N_("Points and vouchers"),
    "account": N_("Account and security"),
    "campaigns": N_("News and offers"),
}
DELIVERY_STATUSES = ("queued", "sent", "failed", "gone")
CHANNELS = ("push", "sms")
MAX_SUBSCRIPTIONS = 20  # devices per member: enough for anyone, a ceiling for a script


class PushSubscription(db.Model):
    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), nullable=False, unique=True)
    p256dh: Mapped[str] = mapped_column(String(100), nullable=False)
    auth: Mapped[str] = mapped_column(String(40), nullable=False)
    label: Mapped[str] = mapped_column(String(80), nullable=False)
    categories: Mapped[list] = mapped_column(JSON, nullable=False, default=lambda: list(CATEGORIES))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def info(self) -> dict:
        """What pywebpush takes as `subscription_info`."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def takes(self, category: str) -> bool:
        return category in (self.categories or ())

    @classmethod
    def of_member(cls, member) -> list[PushSubscription]:
        return list(db.session.scalars(select(cls).where(cls.user_id == member.id).order_by(cls.id)))

    @classmethod
    def owned_by(cls, member, subscription_id: int) -> PushSubscription | None:
        return db.session.scalar(select(cls).where(cls.id == subscription_id, cls.user_id == member.id))


class Delivery(db.Model):
    """One notification on one channel to one device (push) or phone (sms, no subscription)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "subscription_id"),
        CheckConstraint("status IN ('queued','sent','failed','gone')", name="known_status"),
        CheckConstraint("channel IN ('push','sms')", name="known_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"),
                                                 nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    # SET NULL: a subscription the push service declared gone is deleted; its delivery stays "gone".
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_subscriptions.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="queued")
    http_status: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


# -- what a member may subscribe ---------------------------------------------------------------

_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def _b64url(value, length: int, message: str, field: str) -> bytes:
    if not isinstance(value, str) or not _B64URL.match(value):
        raise DomainError(message, field=field)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise DomainError(message, field=field) from None
    if len(raw) != length:
        raise DomainError(message, field=field)
    return raw


def check_keys(p256dh, auth) -> None:
    """p256dh: an uncompressed P-256 point (65 bytes, base64url); auth: 16 bytes."""
    message = N_("This browser sent a malformed push key. Turn push off on this device and on again.")
    point = _b64url(p256dh, 65, message, "p256dh")
    if point[0] != 4:
        raise DomainError(message, field="p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise DomainError(message, field="p256dh") from None
    _b64url(auth, 16, message, "auth")


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def check_endpoint(endpoint, allow_private: bool = False) -> None:
    """Refuse an endpoint the server must not call: not https, or resolving into a private,
    loopback or link-local network (members must not make the server call its own network).
    ALLOW_PRIVATE (config PUSH_ALLOW_PRIVATE_ENDPOINTS: the tests' local receiver) lets both
    through. Called at subscription and again at every send: DNS answers change."""
    if not isinstance(endpoint, str) or len(endpoint) > 1000:
        raise DomainError(N_("This push address is not valid."), field="endpoint")
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise DomainError(N_("This push address is not valid."), field="endpoint") from None
    if not host or parts.username or parts.password:
        raise DomainError(N_("This push address is not valid."), field="endpoint")
    if allow_private:
        if parts.scheme not in ("https", "http"):
            raise DomainError(N_("Push addresses must use https."), field="endpoint")
        return
    if parts.scheme != "https":
        raise DomainError(N_("Push addresses must use https."), field="endpoint")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError, OSError):
        raise DomainError(N_("The push service of this browser cannot be reached."), field="endpoint") from None
    if not addresses or any(_refused_address(a) for a in addresses):
        raise DomainError(N_("This push address points into a private network and is refused."), field="endpoint")


def device_label(user_agent: str | None) -> str:
    """A readable name for the device, e.g. "Android · Chrome", from its User-Agent."""
    ua = user_agent or ""
    system = next((name for token, name in (
        ("HarmonyOS", "HarmonyOS"), ("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
        ("Windows", "Windows"), ("Macintosh", "Mac"), ("CrOS", "ChromeOS"), ("Linux", "Linux"),
    ) if token in ua), None)
    browser = next((name for token, name in (
        ("MicroMessenger", "微信"), ("EdgA/", "Edge"), ("Edg/", "Edge"), ("HuaweiBrowser", "华为浏览器"),
        ("MiuiBrowser", "小米浏览器"), ("SamsungBrowser", "Samsung Internet"), ("QQBrowser", "QQ浏览器"),
        ("UCBrowser", "UC浏览器"), ("Firefox/", "Firefox"), ("FxiOS", "Firefox"), ("CriOS", "Chrome"),
        ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"),
    ) if token in ua), None)
    label = " · ".join(part for part in (system, browser) if part)
    return label[:80] or "Web"


def subscribe(member, endpoint, p256dh, auth, user_agent: str | None, categories=None,
              allow_private: bool = False, replaces: str | None = None) -> PushSubscription:
    """Store this device's subscription for MEMBER (flush only). The same endpoint again updates
    it (keys rotate; a shared phone passes the device to whoever is signed in now). REPLACES is
    the endpoint the push service retired (the service worker's `pushsubscriptionchange`): that
    row goes, and its switches carry over."""
    check_endpoint(endpoint, allow_private)
    check_keys(p256dh, auth)
    if isinstance(replaces, str) and replaces != endpoint:
        previous = db.session.scalar(select(PushSubscription).where(
            PushSubscription.endpoint == replaces, PushSubscription.user_id == member.id))
        if previous is not None:
            if categories is None:
                categories = list(previous.categories or ())
            db.session.delete(previous)
            db.session.flush()
    chosen = [c for c in CATEGORIES if categories is None or c in categories]
    row = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        count = db.session.scalar(select(func.count()).select_from(PushSubscription)
                                  .where(PushSubscription.user_id == member.id))
        if count >= MAX_SUBSCRIPTIONS:
            raise DomainError(N_("You have push turned on for %(count)s devices. Turn one off first."),
                              count=MAX_SUBSCRIPTIONS)
        row = PushSubscription(user_id=member.id, endpoint=endpoint, categories=chosen)
        db.session.add(row)
    elif row.user_id != member.id:
        row.user_id, row.categories = member.id, chosen
    row.p256dh, row.auth, row.label = p256dh, auth, device_label(user_agent)
    db.session.flush()
    return row


def set_categories(subscription: PushSubscription, categories) -> None:
    subscription.categories = [c for c in CATEGORIES if c in set(categories or ())]


def unsubscribe(member, endpoint: str | None = None, subscription_id: int | None = None) -> bool:
    """Forget one of MEMBER's devices, by its endpoint or id; False when there was none."""
    query = delete(PushSubscription).where(PushSubscription.user_id == member.id)
    if endpoint is not None:
        query = query.where(PushSubscription.endpoint == endpoint)
    elif subscription_id is not None:
        query = query.where(PushSubscription.id == subscription_id)
    else:
        return False
    return db.session.execute(query.execution_options(synchronize_session="fetch")).rowcount > 0
