"""Factories returning real rows with sensible defaults. Factory-made users share one
precomputed hash of a cheap method (PBKDF2, one round), so logging them in through the form
costs nothing; what the app hashes itself (signup, password change and reset: User.hash_password)
still uses the real, slow default, and the tests of those pay for it."""
from __future__ import annotations

import itertools
from datetime import timedelta

from werkzeug.security import generate_password_hash

from models import Community, Partner, Store, User, db
from models.accounts import grant_role
from models.activity import record_day, today
from models.types import utcnow

PASSWORD = "Passw0rd-demo"
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")
_seq = itertools.count(1)


class Factories:
    def __init__(self, app):
        self.app = app

    def communities(self) -> dict[str, Community]:
        from demo import ensure_communities

        result = ensure_communities()
        db.session.commit()
        return result

    def user(self, login: str | None = None, nickname: str | None = None, role: str | None = None,
             community: Community | None = None, partner: Partner | None = None, verified: bool = False,
             active_today: bool = True, **kw) -> User:
        n = next(_seq)
        login = login or f"member{n}@example.com"
        kind = "email" if "@" in login else "phone"
        user = User(
            nickname=nickname or f"车友{n}",
            password_hash=_HASH,
            consent_version=self.app.config["PRIVACY_POLICY_VERSION"],
            phone_verified_at=utcnow() if verified and kind == "phone" else None,
            **{kind: login},
            **kw,
        )
        db.session.add(user)
        db.session.flush()
        if active_today:
            # As after a real signup, whose first page records the day: so a test's first request
            # writes nothing that its second would not (query counts, unchanged worlds).
            record_day(user.id, today())
        if role:
            if role in ("organizer", "moderator") and community is None:
                community = self.communities()["ev"]
            if role == "partner" and partner is None:
                partner = self.partner()
            grant_role(user, role, community=community, partner=partner)
        db.session.commit()
        return user

    def partner(self, name: str | None = None, stores: int = 1) -> Partner:
        partner = Partner.get_or_create(name or f"合作门店{next(_seq)}")
        for i in range(stores):
            partner.stores.append(Store(name=f"{i + 1}号店", city="上海", address="上海市某路 1 号"))
        db.session.commit()
        return partner

    def event(self, community: Community | None = None, organizer: User | None = None, publish: bool = True,
              **overrides):
        """A published meetup a week from now with signup open since yesterday (override any field)."""
        from models.events import EventInput, publish_event, save_event

        now = utcnow()
        community = community or self.communities()["ev"]
        organizer = organizer or self.user(role="organizer", community=community)
        starts = overrides.pop("starts_at", now + timedelta(days=7))
        values = dict(
            community=community, kind="meetup", title="周末充电站聚会", description="一起聊聊电池保养。",
            starts_at=starts, ends_at=starts + timedelta(hours=3), place="滨江充电站", address="上海市浦东新区滨江大道 1 号",
            map_url="", capacity=20, companions_allowed=2, signup_opens_at=now - timedelta(days=1),
            signup_closes_at=starts - timedelta(hours=2), cancel_deadline=starts - timedelta(days=1),
            points_price=0, attendance_points=50, level_priority=True, safety_notice="",
        )
        values.update(overrides)
        event = save_event(organizer, EventInput(**values), now=now)
        if publish:
            publish_event(event, organizer, now=now)
        db.session.commit()
        return event
