"""Database handle and every model, so Alembic and the app see one metadata."""
from __future__ import annotations

import contextvars
import functools

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# True while the current unit of work intends to write: SQLite then opens its
# transactions with BEGIN IMMEDIATE (see models/sqlite_tuning.py).
db.write_intent = contextvars.ContextVar("write_intent", default=True)


def built_once(build):
    """Keep the statement BUILD returns for the life of the process (per distinct arguments),
    with `bindparam`s for what varies between calls. SQLAlchemy memoises a statement's cache
    key on the statement object, so a kept statement is neither built nor keyed again: the
    session's user query went from 0.9 to 0.3 ms on PostgreSQL (BENCHMARKS.md, 2026-12-07
    night). For the queries every page runs; a statement is safe to share between threads."""
    return functools.cache(build)


def N_(message: str) -> str:
    """Mark a msgid for extraction; it is translated later, when shown in the reader's language."""
    return message


class DomainError(Exception):
    """A rule of the domain refused an operation; `message` is shown to the member, under the
    form's FIELD when the rule knows which input it refuses."""

    def __init__(self, message: str, *, field: str | None = None, **params):
        super().__init__(message)
        self.message = message
        self.field = field
        self.params = params


from models.accounts import RoleGrant, SmsCode, User  # noqa: E402,F401
from models.audit import AuditEntry, audit  # noqa: E402,F401
from models.communities import Community, Membership  # noqa: E402,F401
from models.notifications import Notification, notify  # noqa: E402,F401
from models.partners import Partner, Store  # noqa: E402,F401
from models.loyalty import EarningRule, Level, PointsPosting, Reward, Voucher, award, level_of, spend  # noqa: E402,F401
from models.content_filter import ProhibitedWord  # noqa: E402,F401
from models.stories import Story, StoryPhoto  # noqa: E402,F401
from models.engagement import Comment, StoryLike  # noqa: E402,F401
from models.moderation import Report  # noqa: E402,F401
from models.search_index import StoryTerm  # noqa: E402,F401
from models.events import Event, Registration  # noqa: E402,F401
from models.outbox import JobRow  # noqa: E402,F401
from models.push import Delivery, PushSubscription  # noqa: E402,F401
from models.garage import Car, CarMake, CarSeries  # noqa: E402,F401
from models.recalls import Recall, RecallCompletion  # noqa: E402,F401
from models.activity import MemberDay  # noqa: E402,F401
from models.consents import Consent  # noqa: E402,F401
from models.campaigns import Campaign, CampaignTarget  # noqa: E402,F401
