"""Vertical sub-communities and who belongs to them."""
from __future__ import annotations

from datetime import datetime

from flask import abort
from flask_babel import get_locale
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, bindparam, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, load_only, mapped_column, query_expression, with_expression

from models import built_once, db
from models.accounts import RoleGrant, User
from models.types import UTCDateTime, utcnow


class Community(db.Model):
    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(30), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(40), nullable=False)
    name_en: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    tagline: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    tagline_en: Mapped[str] = mapped_column(String(160), nullable=False, default="")
    description: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    description_en: Mapped[str] = mapped_column(String(1500), nullable=False, default="")
    # Colours live in CSS (theme-<name>), never inline: the CSP forbids inline styles.
    theme: Mapped[str] = mapped_column(String(20), nullable=False, default="blue")
    position: Mapped[int] = mapped_column(nullable=False, default=0)
    # The number of memberships, moved by join() and leave() in the transaction that adds or
    # removes the row, so no page counts them all; `flask communities verify` checks it.
    member_total: Mapped[int] = mapped_column(nullable=False, default=0, server_default="0")
    # Whether the viewer is a member, when get_by_slug_or_404 asked it with the community; else None.
    viewer_joined: Mapped[bool | None] = query_expression()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    THEMES = ("green", "rose", "orange", "blue", "purple", "teal")

    def _localised(self, zh: str, en: str) -> str:
        return en if en and str(get_locale() or "zh_CN").startswith("en") else zh

    @property
    def display_name(self) -> str:
        return self._localised(self.name, self.name_en)

    @property
    def display_tagline(self) -> str:
        return self._localised(self.tagline, self.tagline_en)

    @property
    def display_description(self) -> str:
        return self._localised(self.description, self.description_en)

    @property
    def cover_path(self) -> str:
        return f"img/communities/{self.slug}.svg"

    @classmethod
    def all_ordered(cls) -> list[Community]:
        return list(db.session.scalars(_all_communities_query()))

    @classmethod
    def get_by_slug_or_404(cls, slug: str, viewer=None) -> Community:
        """The community at SLUG, with whether VIEWER is a member asked in the same query."""
        signed_in = viewer is not None and getattr(viewer, "is_authenticated", False)
        params = {"slug": slug, "viewer_id": viewer.id} if signed_in else {"slug": slug}
        community = db.session.scalar(_community_page_query(signed_in), params)
        if community is None:
            abort(404)
        community.joined_asked_for = getattr(viewer, "id", None)  # whose membership viewer_joined says
        return community

    @staticmethod
    def member_counts(communities) -> dict[int, int]:
        """Member count per community id: the kept counters, no query."""
        return {c.id: c.member_total for c in communities}

    def member_count(self) -> int:
        return self.member_total

    def _count_members(self, change: int) -> None:
        """Move the counter in SQL (two joins at once both count), then read it afresh."""
        db.session.execute(update(Community).where(Community.id == self.id)
                           .values(member_total=Community.member_total + change))
        db.session.expire(self, ["member_total", "viewer_joined"])

    # The community page shows these members by nickname only: their account columns stay behind.
    def recent_members(self, limit: int = 8):
        return list(db.session.scalars(_recent_members_query(limit), {"community_id": self.id}))

    def staff(self) -> dict[str, list]:
        """Organizers and moderators of this community, by role."""
        rows = db.session.execute(_staff_query(), {"community_id": self.id})
        staff: dict[str, list] = {"organizer": [], "moderator": []}
        for role, user in rows:
            staff[role].append(user)
        return staff

    def join(self, user) -> bool:
        """Add USER to this community; returns False if already a member (a repeat is harmless)."""
        if self.has_member(user):
            return False
        try:
            with db.session.begin_nested():
                db.session.add(Membership(user_id=user.id, community_id=self.id))
        except IntegrityError:
            return False
        self._count_members(+1)
        return True

    def leave(self, user) -> bool:
        result = db.session.execute(
            delete(Membership).where(Membership.user_id == user.id, Membership.community_id == self.id)
        )
        if result.rowcount:
            self._count_members(-1)
        return result.rowcount > 0

    def has_member(self, user) -> bool:
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        if self.viewer_joined is not None and getattr(self, "joined_asked_for", None) == user.id:
            return bool(self.viewer_joined)  # asked with the community by get_by_slug_or_404
        return self.id in member_community_ids(user)


def member_community_ids(user) -> set[int]:
    """Ids of the communities USER belongs to, in one query."""
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    return set(db.session.scalars(_member_communities_query(), {"user_id": user.id}))


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "community_id"),
        # A community's newest members (its page) without sorting all of them.
        Index("ix_memberships_community_joined", "community_id", "joined_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), nullable=False, index=True
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


# The statements of the pages (models.built_once: built and keyed once per process).

@built_once
def _all_communities_query():
    return select(Community).order_by(Community.position, Community.id)


@built_once
def _community_page_query(signed_in: bool):
    query = select(Community).where(Community.slug == bindparam("slug"))
    if signed_in:
        joined = exists().where(Membership.community_id == Community.id, Membership.user_id == bindparam("viewer_id"))
        query = query.options(with_expression(Community.viewer_joined, joined))
    return query


@built_once
def _member_communities_query():
    return select(Membership.community_id).where(Membership.user_id == bindparam("user_id"))


@built_once
def _recent_members_query(limit: int):
    return (select(User).options(load_only(User.id, User.nickname))
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.community_id == bindparam("community_id"))
            .order_by(Membership.joined_at.desc()).limit(limit))


@built_once
def _staff_query():
    return (select(RoleGrant.role, User).options(load_only(User.id, User.nickname))
            .join(User, User.id == RoleGrant.user_id)
            .where(RoleGrant.community_id == bindparam("community_id"))
            .order_by(RoleGrant.id))


def _counted_members():
    return (select(func.count()).select_from(Membership).where(Membership.community_id == Community.id)
            .correlate(Community).scalar_subquery())


def recount_members() -> None:
    """Set every community's counter from its memberships (after rows written in bulk)."""
    db.session.execute(update(Community).values(member_total=_counted_members()))


def verify_member_counts() -> list[str]:
    """Each community whose counter differs from its memberships, said in a line."""
    rows = db.session.execute(select(Community.slug, Community.member_total, _counted_members()).order_by(Community.id))
    return [f"{slug}: counter {kept}, memberships {actual}" for slug, kept, actual in rows if kept != actual]
