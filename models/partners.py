"""Partner businesses (car wash, maintenance, inspection, modding) and their stores."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import db
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
