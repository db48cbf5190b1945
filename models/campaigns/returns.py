"""The campaign link and the return gift (回归礼).

Each targeted member's link carries a signed token naming the campaign and the member
(`/r/<token>`), so it works on any device and cannot be forged or moved to another campaign.
Opening it records the first click; the member it was sent to, signed in, within
`RETURN_WINDOW` of being targeted, has returned: recorded once, and the campaign's gift is
credited once through the ledger (`campaign_return` rule, one posting key per campaign). Anyone
else — another member, a visitor, a second visit, a late one — is taken to the page without it.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import update

from models import db
from models.campaigns.model import RETURN_WINDOW, Campaign, CampaignTarget
from models.loyalty.ledger import award
from models.types import utcnow

SALT = "campaign-return"
RULE = "campaign_return"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def return_token(campaign_id: int, user_id: int) -> str:
    return _serializer().dumps([campaign_id, user_id])


def return_link(campaign_id: int, user_id: int) -> str:
    """The path of MEMBER's link for a campaign (the inbox, the push and the SMS carry it)."""
    return f"/r/{return_token(campaign_id, user_id)}"


def read_token(token: str) -> tuple[int, int] | None:
    """(campaign id, member id) of a token we signed, or None (tampered, truncated, made up)."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return None
    return value[0], value[1]


def gift_key(campaign_id: int) -> str:
    return f"campaign-return:{campaign_id}"


@dataclass(frozen=True)
class ReturnOutcome:
    """What opening a link did. STATUS: "invalid" (not our token, or no such target), "sign_in"
    (a visitor: sign in as the member to collect), "other_member", "expired", "already" (came
    back before), "returned" (welcome back, no gift set), "gift" (POINTS credited now)."""

    status: str
    campaign: Campaign | None = None
    points: int = 0

    @property
    def destination(self) -> str:
        return self.campaign.link if self.campaign is not None else "/"


def open_link(token: str, member, now=None) -> ReturnOutcome:
    """Record the click behind TOKEN and, for its own member in time, the return and the gift.
    Flushes; the caller commits. Safe to call twice at once: the return is a conditional UPDATE
    and the gift a keyed ledger posting."""
    now = now or utcnow()
    read = read_token(token)
    if read is None:
        return ReturnOutcome("invalid")
    campaign_id, user_id = read
    target = CampaignTarget.of(campaign_id, user_id)
    if target is None:
        return ReturnOutcome("invalid")
    campaign = db.session.get(Campaign, campaign_id)
    if target.clicked_at is None:
        db.session.execute(update(CampaignTarget).where(CampaignTarget.id == target.id,
                                                        CampaignTarget.clicked_at.is_(None))
                           .values(clicked_at=now).execution_options(synchronize_session=False))
    if member is None or not getattr(member, "is_authenticated", False):
        return ReturnOutcome("sign_in", campaign)
    if member.id != user_id:
        return ReturnOutcome("other_member", campaign)
    if target.returned_at is not None:
        return ReturnOutcome("already", campaign)
    if now > target.created_at + RETURN_WINDOW:
        return ReturnOutcome("expired", campaign)
    returned = db.session.execute(
        update(CampaignTarget).where(CampaignTarget.id == target.id, CampaignTarget.returned_at.is_(None))
        .values(returned_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if returned != 1:
        return ReturnOutcome("already", campaign)
    if not campaign.gift_points:
        return ReturnOutcome("returned", campaign)
    posting = award(member, RULE, cause=campaign, key=gift_key(campaign.id), now=now, points=campaign.gift_points)
    return ReturnOutcome("gift" if posting is not None else "returned", campaign, posting.points if posting else 0)
