"""The rewards catalogue and the vouchers members redeem with points (the top layer of loyalty).

A redemption is one transaction: lock the member, check the limits, take one unit of
stock with a conditional UPDATE (the database settles a race for the last unit), debit the
points with `spend()`, issue the voucher. The form's one-time nonce is unique per member,
so the same click replayed returns the same voucher.

This layer owns the ledger keys it writes (`redeem_key`, `void_key`): `checks.verify_ledger`
asks for them instead of knowing their format.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import format_datetime, get_locale
from sqlalchemy import (CheckConstraint, Column, ForeignKey, String, Table, UniqueConstraint, func, or_, select,
                        update)
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from models import N_, DomainError, db
from models.audit import audit
from models.loyalty.ledger import NotEnoughPoints, expire_due, level_of, refund, require_balance, spend
from models.nonces import first_submission
from models.notifications import notify
from models.types import UTCDateTime, shanghai_day, shanghai_midnight, utcnow

REWARD_KINDS = ("wash", "maintenance", "inspection", "modding")
VOUCHER_STATES = ("issued", "used", "expired", "void")

reward_stores = Table(
    "reward_stores",
    db.metadata,
    Column("reward_id", ForeignKey("rewards.id", ondelete="CASCADE"), primary_key=True),
    Column("store_id", ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True),
)


class Reward(db.Model):
    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("kind IN ('wash','maintenance','inspection','modding')", name="known_kind"),
        CheckConstraint("points_price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("per_member_limit >= 1", name="limit_positive"),
        CheckConstraint("monthly_limit IS NULL OR monthly_limit >= 1", name="monthly_positive"),
        CheckConstraint("validity_days >= 1", name="validity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="RESTRICT"), nullable=False, index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(80), nullable=False)
    title_en: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    description: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    terms: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    points_price: Mapped[int] = mapped_column(nullable=False)
    # Units left to redeem: decremented by a conditional UPDATE, never below zero.
    stock: Mapped[int] = mapped_column(nullable=False, default=0)
    per_member_limit: Mapped[int] = mapped_column(nullable=False, default=1)
    monthly_limit: Mapped[int | None] = mapped_column()
    min_level: Mapped[int] = mapped_column(nullable=False, default=1)
    validity_days: Mapped[int] = mapped_column(nullable=False, default=30)
    active: Mapped[bool] = mapped_column(nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    # The picture, re-encoded like a story photo; indexed: /media finds the reward by its key.
    picture_key: Mapped[str | None] = mapped_column(String(200), index=True)
    picture_thumb_key: Mapped[str | None] = mapped_column(String(200), index=True)

    partner = relationship("Partner", lazy="joined")
    community = relationship("Community")
    stores = relationship("Store", secondary=reward_stores, order_by="Store.id")

    @property
    def display_title(self) -> str:
        return self.title_en if self.title_en and str(get_locale() or "zh").startswith("en") else self.title

    def move_stock(self, delta: int) -> None:
        """Add DELTA units (negative to remove) in one conditional UPDATE, so redemptions made
        meanwhile are kept; raises DomainError instead of going below zero."""
        if not delta:
            return
        moved = db.session.execute(
            update(Reward).where(Reward.id == self.id, Reward.stock + delta >= 0)
            .values(stock=Reward.stock + delta).execution_options(synchronize_session=False)
        )
        db.session.refresh(self, ["stock"])
        if moved.rowcount != 1:
            raise DomainError(N_("The stock changed while you were editing: %(stock)s left now. Check and save again."),
                              stock=self.stock)

    def visible_to(self, viewer) -> bool:
        """An active reward (and its picture) is public; a withdrawn one only administrators see."""
        return self.active or bool(viewer is not None and getattr(viewer, "is_admin", False))

    @classmethod
    def with_picture(cls, key: str) -> Reward | None:
        """The reward whose picture (display copy or thumbnail) is stored under KEY."""
        return db.session.scalar(select(cls).where(or_(cls.picture_key == key, cls.picture_thumb_key == key)).limit(1))

    def expires_at_if_redeemed(self, now: datetime | None = None) -> datetime:
        """When a voucher redeemed at NOW stops being valid: the end of its last Shanghai day."""
        return shanghai_midnight(shanghai_day(now or utcnow()) + timedelta(days=self.validity_days + 1))

    def last_day_if_redeemed(self, now: datetime | None = None):
        """The last Shanghai day a voucher redeemed at NOW can be used (what the member is shown)."""
        return shanghai_day(self.expires_at_if_redeemed(now) - timedelta(seconds=1))

    def usable_stores(self):
        """The stores that accept this reward: those listed, else all of the partner's."""
        return self.stores or self.partner.stores

    @classmethod
    def catalogue(cls, kind: str | None = None, community_id: int | None = None) -> list[Reward]:
        query = select(cls).where(cls.active.is_(True))
        if kind in REWARD_KINDS:
            query = query.where(cls.kind == kind)
        if community_id:
            query = query.where((cls.community_id == community_id) | cls.community_id.is_(None))
        return list(db.session.scalars(query.order_by(cls.min_level, cls.points_price, cls.id)))


# -- voucher codes: 12 Crockford base32 characters plus Crockford's mod-37 check symbol --------

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_SYMBOLS = ALPHABET + "*~$=U"
CODE_LENGTH = 12
_DECODE = {c: i for i, c in enumerate(ALPHABET)} | {"O": 0, "I": 1, "L": 1}


def check_symbol(body: str) -> str:
    value = 0
    for char in body:
        value = value * 32 + _DECODE[char]
    return CHECK_SYMBOLS[value % 37]


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return body + check_symbol(body)


def normalise_code(typed: str) -> str | None:
    """The canonical code for what staff typed (any case, dashes, O/0 and I/L/1 confusions), or
    None when it cannot be a code or its check symbol does not match (a typo)."""
    text = re.sub(r"[\s-]", "", typed or "").upper()
    if len(text) != CODE_LENGTH + 1:
        return None
    body, check = text[:CODE_LENGTH], text[CODE_LENGTH]
    if any(c not in _DECODE for c in body) or check not in CHECK_SYMBOLS + "OIL":
        return None
    body = "".join(ALPHABET[_DECODE[c]] for c in body)
    check = {"O": "0", "I": "1", "L": "1"}.get(check, check)
    return body + check if check_symbol(body) == check else None


def format_code(code: str) -> str:
    """ABCD-EFGH-JKMN-P: easier to read out and type."""
    return "-".join([code[0:4], code[4:8], code[8:12], code[12:]])


class Voucher(db.Model):
    __tablename__ = "vouchers"
    __table_args__ = (
        UniqueConstraint("user_id", "nonce"),
        CheckConstraint("state IN ('issued','used','expired','void')", name="known_state"),
        CheckConstraint("state <> 'used' OR (used_at IS NOT NULL AND used_store_id IS NOT NULL)", name="used_has_store"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(13), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="RESTRICT"), nullable=False, index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="RESTRICT"), nullable=False, index=True)
    nonce: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="issued")
    points_paid: Mapped[int] = mapped_column(nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    used_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="RESTRICT"))
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    reward = relationship("Reward", lazy="joined")
    user = relationship("User", foreign_keys=[user_id])
    used_store = relationship("Store")

    @property
    def display_code(self) -> str:
        return format_code(self.code)

    def effective_state(self, now: datetime | None = None) -> str:
        """`expired` as soon as the date passes, even before the nightly job writes it."""
        if self.state == "issued" and self.expires_at <= (now or utcnow()):
            return "expired"
        return self.state

    @property
    def last_day(self):
        """The last Shanghai day the voucher can be used."""
        return shanghai_day(self.expires_at - timedelta(seconds=1))

    @classmethod
    def of_member(cls, member) -> list[Voucher]:
        """MEMBER's vouchers, newest first, with reward, partner and used store in one query."""
        query = (
            select(cls)
            .where(cls.user_id == member.id)
            .options(joinedload(cls.reward).joinedload(Reward.partner), joinedload(cls.used_store))
            .order_by(cls.issued_at.desc(), cls.id.desc())
        )
        return list(db.session.scalars(query).unique())

    @classmethod
    def owned_by(cls, member, code: str) -> Voucher | None:
        """MEMBER's voucher with CODE; another member's is as absent as an unknown one."""
        return db.session.scalar(
            select(cls).where(cls.code == code, cls.user_id == member.id).options(joinedload(cls.used_store))
        )

    @classmethod
    def by_code(cls, typed: str) -> Voucher | None:
        code = normalise_code(typed)
        return db.session.scalar(select(cls).where(cls.code == code)) if code else None


# -- the ledger keys this layer writes (checks.verify_ledger asks for them) ----------------------

def redeem_key(nonce: str) -> str:
    """The key of the payment for the voucher redeemed with form nonce NONCE."""
    return f"redeem:{nonce}"


def void_key(voucher_id: int) -> str:
    """The key of the refund for a cancelled voucher."""
    return f"void:{voucher_id}"


# -- redeeming and using --------------------------------------------------------------------------

def redeem_refusal(member, reward: Reward | None, now: datetime | None = None) -> DomainError | None:
    """Why MEMBER cannot redeem REWARD now (None when they can): what the reward page shows next
    to a disabled button and what `redeem` raises, so the page and the rule never disagree.

    Read-only: points past their expiry date are left out without writing the expiry postings
    (`redeem` writes them first), and stock is only read here (`redeem` takes a unit with a
    conditional UPDATE, which settles a race for the last one)."""
    now = now or utcnow()
    if reward is None or not reward.active:
        return DomainError(N_("This reward is no longer available."))
    if member is None or not getattr(member, "is_authenticated", True):
        return DomainError(N_("Log in to redeem"))
    if reward.stock <= 0:
        return DomainError(N_("Sorry, this reward is out of stock."))
    level = level_of(member, now)
    if level.number < reward.min_level:
        return DomainError(N_("This reward is for Lv.%(level)s and above; you are Lv.%(mine)s."),
                           level=reward.min_level, mine=level.number)
    held = select(func.count()).select_from(Voucher).where(
        Voucher.user_id == member.id, Voucher.reward_id == reward.id, Voucher.state != "void"
    )
    if db.session.scalar(held) >= reward.per_member_limit:
        return DomainError(N_("You have already redeemed this reward %(count)s times, the most allowed."),
                           count=reward.per_member_limit)
    if reward.monthly_limit:
        month_start = shanghai_midnight(shanghai_day(now).replace(day=1))
        if db.session.scalar(held.where(Voucher.issued_at >= month_start)) >= reward.monthly_limit:
            return DomainError(N_("You have reached this month's limit for this reward. Try again next month."))
    try:
        require_balance(member, reward.points_price, now)
    except NotEnoughPoints as short:
        return short
    return None


def redeem(member, reward_id: int, nonce: str, now: datetime | None = None) -> Voucher:
    """Debit the points and issue one voucher, in the caller's transaction; the same nonce
    returns the same voucher. Raises DomainError with the reason when it cannot
    (`redeem_refusal`, checked again here under the member's lock)."""
    now = now or utcnow()
    existing = first_submission(member, nonce, Voucher.nonce, Voucher.user_id)
    if existing is not None:
        return existing
    reward = db.session.get(Reward, reward_id)
    if reward is not None:
        db.session.refresh(reward, ["stock", "active"])
    expire_due(member, now)
    refused = redeem_refusal(member, reward, now)
    if refused is not None:
        raise refused
    taken = db.session.execute(
        update(Reward).where(Reward.id == reward.id, Reward.stock > 0).values(stock=Reward.stock - 1)
    )
    if taken.rowcount != 1:
        raise DomainError(N_("Sorry, this reward is out of stock."))
    voucher = Voucher(
        code=new_code(), user_id=member.id, reward_id=reward.id, partner_id=reward.partner_id, nonce=nonce,
        points_paid=reward.points_price, issued_at=now, expires_at=reward.expires_at_if_redeemed(now),
    )
    db.session.add(voucher)
    db.session.flush()
    spend(member, reward.points_price, cause=voucher, key=redeem_key(nonce), reason=N_("Redeemed a voucher"), now=now)
    notify(member, "voucher_issued", {"reward": reward.title}, link=f"/me/vouchers/{voucher.code}")
    return voucher


def use_voucher(typed_code: str, store, staff, now: datetime | None = None) -> Voucher:
    """Mark a voucher used at STORE by partner STAFF: once, however many scans race."""
    now = now or utcnow()
    code = normalise_code(typed_code)
    if code is None:
        raise DomainError(N_("This code is not valid. Check it for a typo."))
    voucher = db.session.scalar(select(Voucher).where(Voucher.code == code))
    if voucher is None or not staff.has_role("partner", partner=voucher.partner_id):
        raise DomainError(N_("No voucher of your business has this code."))
    if store is None or store.partner_id != voucher.partner_id:
        raise DomainError(N_("Choose one of your stores."))
    if voucher.reward.stores and store not in voucher.reward.stores:
        raise DomainError(N_("This voucher cannot be used at this store."))
    won = db.session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.state == "issued", Voucher.expires_at > now)
        .values(state="used", used_at=now, used_store_id=store.id, used_by_id=staff.id)
    )
    db.session.refresh(voucher)
    if won.rowcount != 1:
        raise refusal(voucher, now)
    notify(voucher.user, "voucher_used", {"reward": voucher.reward.title, "store": store.name},
           link=f"/me/vouchers/{voucher.code}")
    return voucher


def refusal(voucher: Voucher, now: datetime | None = None) -> DomainError:
    """Why a voucher cannot be used now, said the way staff need to hear it."""
    state = voucher.effective_state(now)
    if state == "used":
        return DomainError(N_("Already used on %(when)s at %(store)s."),
                           when=format_datetime(voucher.used_at, "yyyy-MM-dd HH:mm"), store=voucher.used_store.name)
    if state == "void":
        return DomainError(N_("This voucher was cancelled and cannot be used."))
    return DomainError(N_("This voucher expired on %(date)s and cannot be used."), date=voucher.last_day.isoformat())


def void_refusal(voucher: Voucher, now: datetime | None = None) -> DomainError | None:
    """Why an administrator cannot cancel VOUCHER now (None when they can): only an unused one
    that has not expired (an expired voucher is never refunded)."""
    state = voucher.effective_state(now)
    if state == "expired":
        return DomainError(N_("Only an unused voucher that has not expired can be cancelled."))
    if state != "issued":
        return DomainError(N_("Only an unused voucher can be cancelled."))
    return None


def void_voucher(voucher: Voucher, actor, reason: str, now: datetime | None = None) -> Voucher:
    """An administrator cancels an unused voucher: points refunded, the unit back in stock, audited."""
    now = now or utcnow()
    if (refused := void_refusal(voucher, now)) is not None:
        raise refused
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(N_("Give a reason for cancelling the voucher."))
    won = db.session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id, Voucher.state == "issued", Voucher.expires_at > now)
        .values(state="void", voided_at=now)
    )
    db.session.refresh(voucher)
    if won.rowcount != 1:  # used or cancelled meanwhile, or expired at this very moment
        raise void_refusal(voucher, now) or DomainError(N_("Only an unused voucher can be cancelled."))
    db.session.execute(update(Reward).where(Reward.id == voucher.reward_id).values(stock=Reward.stock + 1))
    refund(voucher.user, voucher.points_paid, cause=voucher, key=void_key(voucher.id), reason=N_("Voucher cancelled"),
           now=now)
    audit(actor, "voucher.void", voucher, before={"state": "issued"}, after={"state": "void", "reason": reason})
    notify(voucher.user, "voucher_voided", {"reward": voucher.reward.title, "points": voucher.points_paid},
           link="/me/points")
    return voucher


def sweep_vouchers(now: datetime | None = None) -> None:
    """Mark vouchers past their date expired (never refunded), and remind owners 3 days ahead
    (once per voucher: the notice's dedupe key)."""
    now = now or utcnow()
    db.session.execute(
        update(Voucher).where(Voucher.state == "issued", Voucher.expires_at <= now).values(state="expired")
    )
    expiring = db.session.scalars(
        select(Voucher).where(Voucher.state == "issued", Voucher.expires_at > now,
                              Voucher.expires_at <= now + timedelta(days=3))
    ).all()
    for voucher in expiring:
        notify(voucher.user, "voucher_expiring", {"reward": voucher.reward.title, "date": voucher.last_day.isoformat()},
               link=f"/me/vouchers/{voucher.code}", dedupe_key=f"voucher-expiring:{voucher.id}")


# -- administrators edit the catalogue -----------------------------------------------------------

REWARD_FIELDS = ("partner_id", "kind", "title", "title_en", "description", "terms", "points_price", "stock",
                 "per_member_limit", "monthly_limit", "min_level", "validity_days", "community_id", "active",
                 "picture_key")


class RewardRefused(DomainError):
    """A save refused because of one input: FIELD names it, so the form shows the reason there."""

    def __init__(self, field: str, message: str, **params):
        super().__init__(message, **params)
        self.field = field


@dataclass(frozen=True)
class RewardInput:
    """What the reward form says. PARTNER is the chosen partner (its stores are the ones to pick
    from); STOCK_SEEN is the stock the administrator was shown: an edit moves the stock by the
    difference, so redemptions made meanwhile are kept."""

    partner: object  # a models.partners.Partner, with its stores
    kind: str
    title: str
    points_price: int
    stock: int
    per_member_limit: int
    min_level: int
    validity_days: int
    title_en: str = ""
    description: str = ""
    terms: str = ""
    monthly_limit: int | None = None
    community_id: int | None = None
    active: bool = True
    store_ids: frozenset[int] = frozenset()
    stock_seen: int | None = None
    picture: tuple[str, str] | None = None  # the keys of a newly stored picture
    remove_picture: bool = False


def _snapshot(reward: Reward) -> dict:
    return {**{name: getattr(reward, name) for name in REWARD_FIELDS}, "stores": [s.id for s in reward.stores]}


def save_reward(reward: Reward | None, data: RewardInput, actor) -> Reward:
    """Create (REWARD None) or update a reward, audited. Raises RewardRefused when the partner
    would change under vouchers members already hold, or the stock moved below zero meanwhile."""
    partner = data.partner
    before = None
    if reward is not None:
        before = _snapshot(reward)
        if reward.partner_id != partner.id and db.session.scalar(
                select(func.count()).select_from(Voucher).where(Voucher.reward_id == reward.id)):
            raise RewardRefused("partner",
                                N_("Members already hold vouchers of this reward: its partner cannot change."))
        seen = reward.stock if data.stock_seen is None else data.stock_seen
        try:
            reward.move_stock(data.stock - seen)
        except DomainError as error:
            raise RewardRefused("stock", error.message, **error.params) from None
    else:
        reward = Reward(stock=data.stock)
        db.session.add(reward)
    reward.partner_id = partner.id
    reward.partner = partner
    reward.stores = [s for s in partner.stores if s.id in data.store_ids]
    reward.kind = data.kind
    reward.title = data.title.strip()
    reward.title_en = (data.title_en or "").strip()
    reward.description = (data.description or "").strip()
    reward.terms = (data.terms or "").strip()
    reward.points_price = data.points_price
    reward.per_member_limit = data.per_member_limit
    reward.monthly_limit = data.monthly_limit or None
    reward.min_level = data.min_level
    reward.validity_days = data.validity_days
    reward.community_id = data.community_id or None
    reward.active = bool(data.active)
    if data.picture is not None:
        reward.picture_key, reward.picture_thumb_key = data.picture
    elif data.remove_picture:
        reward.picture_key = reward.picture_thumb_key = None
    db.session.flush()
    audit(actor, "reward.create" if before is None else "reward.update", reward, before=before,
          after=_snapshot(reward))
    return reward
