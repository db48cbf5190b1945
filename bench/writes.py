"""What the write benchmarks need on a database, and the signed-in members who send them.

A write must be a real new row each time, not an error page nor the replay of one nonce:
- a crowd of members (bulk-inserted accounts with a verified mobile number and no memberships,
  so they change no page the bench reads), each with a session cookie and its CSRF token
  signed here with the server's SECRET_KEY, as the browser of a member who logged in holds;
- likes and comments: a random crowd member on a random published story (comments carry a
  fresh random nonce, which `models/nonces.py` accepts from any client: 16–64 URL-safe chars);
- signups: each crowd member once, for a bench event whose seats cannot run out;
- redemptions: crowd members given points through `adjust`, a cheap reward with stock and a
  per-member limit that cannot run out, a fresh nonce per request.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

WRITES = ("like", "comment", "signup", "redeem")
CROWD_EMAIL = "crowd{n}@bench.example"
PAYER_POINTS = 5_000
REWARD_PRICE = 10  # 500 redemptions per payer
COMMENT_PREFIX = quote("压测评论，第")  # form-encoded: wrk sends the body as it is


@dataclass
class WriteWorld:
    crowd: list[int]  # crowd[0] (and payers[0]) send the check before wrk; wrk gets the others
    payers: list[int]
    event_id: int
    reward_id: int
    story_ids: list[int]  # a sample of the published stories

    def targets(self, kind: str) -> list[int]:
        return {"like": self.story_ids, "comment": self.story_ids, "signup": [self.event_id],
                "redeem": [self.reward_id]}[kind]

    def senders(self, kind: str) -> list[int]:
        return self.payers if kind == "redeem" else self.crowd


def _demo_catalogue() -> None:
    """The demo's partners and rewards, on a database that has none (the scale generator writes
    no catalogue): /rewards then shows the same cards at both sizes."""
    from demo import PARTNERS, REWARDS
    from models import Community, Partner, Reward, Store, db

    communities = {c.slug: c for c in db.session.scalars(db.select(Community))}
    partners = {}
    for name, kind, stores in PARTNERS:
        partners[name] = partner = Partner.get_or_create(name)
        partner.kind = kind
        partner.stores.extend(Store(name=s, city=city, address=address) for s, city, address in stores)
    db.session.flush()
    for partner, kind, title, title_en, price, stock, min_level, days, slug in REWARDS:
        db.session.add(Reward(partner_id=partners[partner].id, kind=kind, title=title, title_en=title_en,
                              points_price=price, stock=stock, per_member_limit=2, monthly_limit=1, min_level=min_level,
                              validity_days=days, community_id=communities[slug].id if slug else None,
                              description="车友圈会员专享，凭券到店核销。", terms="每次限用一张，不与店内其他优惠同享。"))


def prepare(app, crowd_size: int, payers: int, seed: int = 1) -> WriteWorld:
    """Add the crowd, the bench event and reward (and the demo catalogue where none is) to APP's database."""
    from sqlalchemy import func, insert, select

    from models import Community, Partner, Reward, User, db
    from models.events.model import Event
    from models.loyalty import adjust
    from models.stories import Story
    from models.types import shanghai_day, utcnow

    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    with app.app_context():
        if not db.session.scalar(select(func.count()).select_from(Reward)):
            _demo_catalogue()
        admin = User.find_by_login("admin@cheyou.example")  # the demo's admin, and the scale's
        joined = now - timedelta(days=60)
        db.session.execute(insert(User), [
            {"nickname": f"压测车友{n:05d}", "email": CROWD_EMAIL.format(n=n), "phone": f"15{n:09d}", "password_hash": "x",
             "consent_version": "bench", "consent_at": joined, "created_at": joined, "phone_verified_at": joined,
             "last_active_on": shanghai_day(now)}  # active today: their first request writes no day
            for n in range(crowd_size)])
        crowd = list(db.session.scalars(select(User.id).where(User.email.like("crowd%@bench.example")).order_by(User.id)))
        paying = db.session.scalars(select(User).where(User.id.in_(crowd[:payers])).order_by(User.id)).all()
        for member in paying:
            adjust(member, PAYER_POINTS, "压测积分", actor=admin, key=f"bench-crowd:{member.id}", now=now)
        partner = Partner.get_or_create("闪亮洗车")
        reward = Reward(partner_id=partner.id, kind="wash", title="压测洗车券", points_price=REWARD_PRICE,
                        stock=10_000_000, per_member_limit=100_000, min_level=1, validity_days=30,
                        description="压测用。", terms="压测用。")
        starts = now + timedelta(days=365)  # after every other upcoming event: the listing's last card
        event = Event(community_id=db.session.scalar(select(Community.id).where(Community.slug == "ev")),
                      organizer_id=admin.id, kind="meetup", title="压测报名活动", description="压测用。",
                      description_html="<p>压测用。</p>", starts_at=starts, ends_at=starts + timedelta(hours=3),
                      place="滨江公园停车场", address="滨江大道1号", map_url="https://uri.amap.com/search?keyword=bench",
                      capacity=10_000_000, signup_opens_at=now - timedelta(days=1),
                      signup_closes_at=starts - timedelta(hours=2), cancel_deadline=starts - timedelta(days=1),
                      level_priority=False, status="published", created_at=now, updated_at=now, published_at=now)
        db.session.add_all([reward, event])
        published = list(db.session.scalars(select(Story.id).where(Story.status == "published")))
        db.session.commit()
        return WriteWorld(crowd=crowd, payers=[m.id for m in paying], event_id=event.id, reward_id=reward.id,
                          story_ids=sorted(rng.sample(published, min(len(published), 2_000))))


def signed_in(app, user_ids: list[int], user_agent: str) -> list[tuple[str, str]]:
    """(Cookie header, CSRF token) of each member, as their browser holds them after logging in
    and one page: Flask-Login's session (its identifier from 127.0.0.1 and USER_AGENT), the CSRF
    secret, and today's activity marker (blueprints/activity.py), so no request re-signs it."""
    from flask import session
    from flask_login import login_user
    from flask_wtf.csrf import generate_csrf
    from sqlalchemy import select

    from blueprints.activity import record_activity
    from models import User, db

    signer = app.session_interface.get_signing_serializer(app)
    made = []
    with app.app_context():
        members = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}
        for user_id in user_ids:
            # A fresh app context each: Flask-WTF keeps the request's token in `g`, which lives there.
            with app.app_context(), app.test_request_context("/healthz", headers={"User-Agent": user_agent},
                                                             environ_base={"REMOTE_ADDR": "127.0.0.1"}):
                login_user(members[user_id])
                token = generate_csrf()
                record_activity(app.response_class())
                made.append((f"{app.config['SESSION_COOKIE_NAME']}={signer.dumps(dict(session))}", token))
    return made


def rows(app, kind: str, world: WriteWorld) -> int:
    """How many rows of what KIND writes there are: likes, comments, the event's registrations, vouchers."""
    from sqlalchemy import func, select

    from models import Voucher, db
    from models.engagement import Comment, StoryLike
    from models.events.model import Registration

    where = {"like": (StoryLike, ()), "comment": (Comment, ()),
             "signup": (Registration, (Registration.event_id == world.event_id,)), "redeem": (Voucher, ())}
    model, conditions = where[kind]
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(model).where(*conditions))
        db.session.remove()
        return count


def request_for(kind: str, target: int, nonce: str) -> tuple[str, dict]:
    """The path and form of one KIND request at TARGET: what the Lua script sends, for the check."""
    return {
        "like": (f"/stories/{target}/like", {}),
        "comment": (f"/stories/{target}/comments", {"body": "压测评论，第0条", "nonce": nonce}),
        "signup": (f"/events/{target}/signup", {"companions": "0"}),
        "redeem": (f"/rewards/{target}/redeem", {"nonce": nonce}),
    }[kind]
