"""Partner businesses (car wash, maintenance, inspection, modding) and their stores."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, contains_eager, joinedload, mapped_column, relationship

from models import N_, DomainError, db
from models.audit import audit
from models.loyalty.rewards import Voucher
from models.types import UTCDateTime, utcnow

PARTNER_KINDS = ("wash", "maintenance", "inspection", "modding")


class Partner(db.Model):
    __tablename__ = "partners"
    __table_args__ = (CheckConstraint("kind IN ('wash','maintenance','inspection','modding')", name="known_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="maintenance")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    stores: Mapped[list[Store]] = relationship(
        back_populates="partner", cascade="all, delete-orphan", order_by="Store.id"
    )

    @classmethod
    def get_or_create(cls, name: str) -> Partner:
        partner = db.session.scalar(select(cls).where(cls.name == name))
        if partner is None:
            partner = cls(name=name)
            db.session.add(partner)
            db.session.flush()
        return partner


class Store(db.Model):
    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("partner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    city: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    address: Mapped[str] = mapped_column(String(200), nullable=False, default="")

    partner: Mapped[Partner] = relationship(back_populates="stores")


def redemptions(partner_ids: list[int] | None, start: datetime, end: datetime) -> list:
    """Vouchers used at the stores of PARTNER_IDS (every partner when None) from START to END
    (UTC, end excluded), by store then time: what the portal lists and the statement settles."""


    query = (
        select(Voucher)
        .join(Store, Store.id == Voucher.used_store_id)
        .options(contains_eager(Voucher.used_store), joinedload(Voucher.user))
        .where(Voucher.state == "used", Voucher.used_at >= start, Voucher.used_at < end)
        .order_by(Store.name, Store.id, Voucher.used_at, Voucher.id)
    )
    if partner_ids is not None:
        query = query.where(Store.partner_id.in_(partner_ids))
    return list(db.session.scalars(query))


# -- administration: partners and stores, audited --------------------------------------------

def _snapshot(row, fields) -> dict:
    return {name: getattr(row, name) for name in fields}


def _name_taken(query) -> bool:
    return db.session.scalar(select(func.count()).select_from(query.subquery())) > 0


def save_partner(partner: Partner | None, name: str, kind: str, actor) -> Partner:
    """Create a partner (PARTNER None) or rename / re-kind one, audited; names are unique."""

    name = (name or "").strip()
    if not name:
        raise DomainError(N_("Give the business a name."))
    if kind not in PARTNER_KINDS:
        raise DomainError(N_("Choose what kind of business this is."))
    same_name = select(Partner.id).where(func.lower(Partner.name) == name.lower())
    if partner is not None:
        same_name = same_name.where(Partner.id != partner.id)
    if _name_taken(same_name):
        raise DomainError(N_("A partner named %(name)s already exists."), name=name)
    before = None if partner is None else _snapshot(partner, ("name", "kind"))
    try:
        with db.session.begin_nested():
            if partner is None:
                partner = Partner(name=name, kind=kind)
                db.session.add(partner)
            else:
                partner.name, partner.kind = name, kind
    except IntegrityError:  # a twin was saved meanwhile
        raise DomainError(N_("A partner named %(name)s already exists."), name=name) from None
    audit(actor, "partner.create" if before is None else "partner.update", partner, before=before,
          after=_snapshot(partner, ("name", "kind")))
    return partner


def save_store(partner: Partner, store: Store | None, name: str, city: str, address: str, actor) -> Store:
    """Add a store to PARTNER (STORE None) or edit one, audited; names are unique per partner."""

    name, city, address = (name or "").strip(), (city or "").strip(), (address or "").strip()
    if not name:
        raise DomainError(N_("Give the store a name."))
    same_name = select(Store.id).where(Store.partner_id == partner.id, func.lower(Store.name) == name.lower())
    if store is not None:
        same_name = same_name.where(Store.id != store.id)
    if _name_taken(same_name):
        raise DomainError(N_("%(partner)s already has a store named %(name)s."), partner=partner.name, name=name)
    fields = ("name", "city", "address")
    before = None if store is None else _snapshot(store, fields)
    try:
        with db.session.begin_nested():
            if store is None:
                store = Store(partner=partner, name=name, city=city, address=address)
                db.session.add(store)
            else:
                store.name, store.city, store.address = name, city, address
    except IntegrityError:
        raise DomainError(N_("%(partner)s already has a store named %(name)s."),
                          partner=partner.name, name=name) from None
    audit(actor, "store.create" if before is None else "store.update", store, before=before,
          after={**_snapshot(store, fields), "partner_id": partner.id})
    return store
