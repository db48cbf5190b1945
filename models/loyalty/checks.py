"""Checks over the whole loyalty programme (the layer above rewards): `points verify`, and the
test suite after every test, recompute what the ledger, the cached standings and the vouchers
should agree on."""
from __future__ import annotations

from sqlalchemy import select

from models import db
from models.loyalty.ledger import PointsPosting, replay
from models.loyalty.rewards import Reward, Voucher, redeem_key, void_key
from models.loyalty.standing import STORED, MemberPoints, Standing, derive, parse_ladder


def verify_ledger() -> tuple[int, int, list[str]]:
    """Recompute every member's balance from the ledger and check what depends on it.

    Returns (members checked, postings checked, problems). A problem is a debit that found no
    points to consume, a running balance below zero, a voucher whose payment or refund is
    missing, a stock below zero, or a cached standing (`member_points`) that is not what the
    member's ledger gives at its `as_of` under the thresholds it names.
    """
    problems: list[str] = []
    rows = db.session.scalars(select(PointsPosting).order_by(PointsPosting.user_id, PointsPosting.created_at, PointsPosting.id))
    by_user: dict[int, list[PointsPosting]] = {}
    for posting in rows:
        by_user.setdefault(posting.user_id, []).append(posting)
    count = 0
    for user_id, postings in by_user.items():
        count += len(postings)
        running = 0
        for posting in postings:
            running += posting.points
            if running < 0:
                problems.append(f"member {user_id}: balance {running} after posting {posting.id}")
                break
        _, deficit = replay(postings)
        if deficit:
            problems.append(f"member {user_id}: {deficit} points debited with nothing to consume")
    keys = {(p.user_id, p.key): p for ps in by_user.values() for p in ps}
    for voucher in db.session.scalars(select(Voucher)):
        paid = keys.get((voucher.user_id, redeem_key(voucher.nonce)))
        if paid is None or paid.points != -voucher.points_paid:
            problems.append(f"voucher {voucher.code}: payment of {voucher.points_paid} points not in the ledger")
        if voucher.state == "void" and keys.get((voucher.user_id, void_key(voucher.id))) is None:
            problems.append(f"voucher {voucher.code}: cancelled without a refund")
    for reward in db.session.scalars(select(Reward).where(Reward.stock < 0)):
        problems.append(f"reward {reward.id}: stock {reward.stock}")
    problems += verify_standings(by_user)
    return len(by_user), count, problems


def verify_standings(by_user: dict[int, list[PointsPosting]]) -> list[str]:
    """Every cached standing against its member's postings (BY_USER, oldest first), recomputed at
    the row's own moment and thresholds: a row gone stale with time is no mismatch, a wrong one is."""
    problems = []
    for row in db.session.execute(select(MemberPoints.__table__).order_by(MemberPoints.user_id)):
        postings = by_user.get(row.user_id, [])
        if not parse_ladder(row.ladder):
            problems.append(f"member {row.user_id}: cached standing names no level thresholds")
            continue
        cached = Standing.from_row(row)
        truth = derive(postings, replay(postings)[0], parse_ladder(row.ladder), row.as_of)
        for name in STORED:
            if getattr(cached, name) != getattr(truth, name):
                problems.append(f"member {row.user_id}: cached {name} {getattr(cached, name)!r}, "
                                f"ledger {getattr(truth, name)!r} (as of {row.as_of.isoformat()})")
    return problems
