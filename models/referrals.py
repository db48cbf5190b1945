"""Referral (老带新): each member's invite link, and the reward both sides get once.

The reward is paid when the invitee completes a first qualifying action (first story
posted, first event attended: those capabilities call `qualify_referral`). A simple
device heuristic keeps one person from inviting themselves: a long-lived random cookie
identifies the browser an account signed up on, and nothing is paid when
- the invitee signed up on the same device as the inviter, or
- an earlier account invited by the same inviter signed up on that device (one device,
  one referral).
"""
from __future__ import annotations

from sqlalchemy import func, select

from models import db
from models.accounts import User
from models.loyalty.ledger import award, lock_members
from models.loyalty.rewards import ALPHABET, _DECODE
from models.notifications import notify


def invite_code(user: User) -> str:
    """The member's invite code: their id in Crockford base32 (it grants nothing by itself)."""
    n, out = user.id, ""
    while True:
        n, r = divmod(n, 32)
        out = ALPHABET[r] + out
        if n == 0:
            return out


def inviter_for(code: str | None) -> User | None:
    code = (code or "").strip().upper()
    if not code or len(code) > 8 or any(c not in _DECODE for c in code):
        return None
    n = 0
    for c in code:
        n = n * 32 + _DECODE[c]
    return db.session.get(User, n)


def record_invitation(new_user: User, code: str | None) -> None:
    """At signup: remember who invited the new member (never themselves)."""
    inviter = inviter_for(code)
    if inviter is not None and inviter.id != new_user.id:
        new_user.invited_by_id = inviter.id


def referral_blocked(member: User, inviter: User) -> bool:
    """The device heuristic described in the module docstring."""
    device = member.signup_device
    if not device:
        return False
    if device == inviter.signup_device:
        return True
    earlier = db.session.scalar(
        select(func.count()).select_from(User).where(
            User.invited_by_id == inviter.id, User.signup_device == device, User.id < member.id
        )
    )
    return earlier > 0


def qualify_referral(member: User, cause=None) -> bool:
    """Call on a member's first qualifying action: rewards inviter and invitee once each."""
    if member.invited_by_id is None:
        return False
    inviter = db.session.get(User, member.invited_by_id)
    if inviter is None or referral_blocked(member, inviter):
        return False
    key = f"referral:{member.id}"
    # The member is usually locked already (it just earned what qualifies); an inviter signed up
    # before whoever they invited, so no other transaction takes this pair the other way round.
    lock_members(member, inviter)
    paid = award(inviter, "referral", cause=member, key=key)
    award(member, "referral", cause=inviter, key="referral:welcome")
    if paid is not None and paid.created_at is not None and paid.ref_id == str(member.id):
        notify(inviter, "referral_rewarded", {"points": paid.points}, link="/me/points", dedupe_key=key)
    return paid is not None
