"""Writing a campaign and sending it: the rules an admin's form meets.

A campaign is a draft until it is sent or scheduled; then it cannot be edited or sent again
(the status moves by a conditional UPDATE, so two clicks — or two admins — send it once).
Sending refuses an empty audience (saying the count) and a time in the past. The fan-out
itself is the job `services.campaigns.fan_out` (queued here by name: models never import
services); every admin action is audited."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update

from models import DomainError, N_, db
from models.audit import audit
from models.campaigns import audience as audiences
from models.campaigns.model import (BODY_MAX, CHANNELS, KINDS, LINK_MAX, MAX_GIFT_POINTS, TITLE_MAX, Campaign)
from models.nonces import first_submission
from models.outbox import enqueue
from models.types import utcnow

FAN_OUT_JOB = "services.campaigns.fan_out"


@dataclass
class CampaignInput:
    kind: str
    title: str
    body: str
    link: str = "/"
    channels: tuple[str, ...] = ("push",)
    gift_points: int | None = None
    audience: audiences.Audience = field(default_factory=audiences.Audience)


def audience_of(kind: str, audience: audiences.Audience) -> audiences.Audience:
    """AUDIENCE as KIND sends it: marketing kinds reach opted-in members only."""
    from models.campaigns.model import MARKETING_KINDS

    if kind in MARKETING_KINDS and not audience.marketing_only:
        return audiences.Audience(**{**audience.__dict__, "marketing_only": True})
    return audience


def campaign_audience(campaign: Campaign) -> audiences.Audience:
    return audience_of(campaign.kind, audiences.Audience.from_json(campaign.audience))


def _link(value: str) -> str:
    """A path on this site ("/events/12"): the return link leads there, never to another site."""
    link = (value or "").strip() or "/"
    if not link.startswith("/") or link.startswith("//") or "\\" in link or len(link) > LINK_MAX \
            or any(ord(c) < 33 for c in link):
        raise DomainError(N_("The link must be a page of this site, starting with “/” (e.g. /events)."),
                          field="link")
    return link


def _checked(data: CampaignInput) -> dict:
    if data.kind not in KINDS:
        raise DomainError(N_("Choose the kind of campaign."), field="kind")
    title, body = (data.title or "").strip(), (data.body or "").strip()
    if not title:
        raise DomainError(N_("Give the campaign a title: it is the first line members read."), field="title")
    if len(title) > TITLE_MAX:
        raise DomainError(N_("Keep the title under %(max)s characters."), field="title", max=TITLE_MAX)
    if not body:
        raise DomainError(N_("Write the message."), field="body")
    if len(body) > BODY_MAX:
        raise DomainError(N_("Keep the message under %(max)s characters: it has to fit a phone's notification."),
                          field="body", max=BODY_MAX)
    channels = [c for c in CHANNELS if c in set(data.channels or ())]
    if set(data.channels or ()) - set(CHANNELS):
        raise DomainError(N_("Choose channels from the list."), field="channels")
    gift = data.gift_points or None
    if gift is not None and not 1 <= gift <= MAX_GIFT_POINTS:
        raise DomainError(N_("A return gift is 1 to %(max)s points."), field="gift_points", max=MAX_GIFT_POINTS)
    audience = data.audience.checked()
    if data.kind == "recall" and audience.recall_id is None and not audience.uses_garage:
        raise DomainError(N_("A safety recall goes to owners of the affected cars: choose the recall, or a make."),
                          field="recall_id")
    return {"kind": data.kind, "title": title, "body": body, "link": _link(data.link), "channels": channels,
            "gift_points": gift, "audience": audience.to_json(), "recall_id": audience.recall_id}


def save_campaign(actor, data: CampaignInput, campaign: Campaign | None = None, nonce: str | None = None) -> Campaign:
    """Create a draft (once per form NONCE) or change one (a draft only). Flushes, audited."""
    values = _checked(data)
    if campaign is None:
        earlier = first_submission(actor, nonce, Campaign.nonce, Campaign.created_by_id)
        if earlier is not None:
            return earlier
        campaign = Campaign(**values, status="draft", created_by_id=actor.id, nonce=nonce)
        db.session.add(campaign)
        db.session.flush()
        audit(actor, "campaign.create", campaign, after=campaign.snapshot())
        return campaign
    if not campaign.editable:
        raise DomainError(N_("This campaign was already sent or scheduled: it can no longer be changed."))
    before = campaign.snapshot()
    for name, value in values.items():
        setattr(campaign, name, value)
    db.session.flush()
    audit(actor, "campaign.edit", campaign, before=before, after=campaign.snapshot())
    return campaign


def send(actor, campaign: Campaign, at: datetime | None = None, now: datetime | None = None) -> Campaign:
    """Send CAMPAIGN now (AT None) or at AT. Refuses a time in the past, an empty audience and
    a campaign already sent or scheduled. Flushes; the fan-out job runs after the commit."""
    now = now or utcnow()
    if at is not None and at <= now:
        raise DomainError(N_("That time has passed: choose a time in the future, or send now."), field="send_at")
    reached = audiences.count(campaign_audience(campaign))
    if reached == 0:
        raise DomainError(N_("Nobody matches this audience (0 members): widen the filters before sending."))
    status = "scheduled" if at is not None else "sending"
    moved = db.session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == "draft")
        .values(status=status, scheduled_at=at, started_at=None if at else now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise DomainError(N_("This campaign was already sent or scheduled: it goes out once."))
    db.session.refresh(campaign)
    enqueue(FAN_OUT_JOB, campaign.id, 0, run_at=at, key=f"campaign:{campaign.id}:start:{(at or now).isoformat()}")
    audit(actor, "campaign.schedule" if at else "campaign.send", campaign,
          after={"audience_count": reached, "scheduled_at": at.isoformat() if at else None})
    return campaign


def cancel(actor, campaign: Campaign) -> Campaign:
    """Take a scheduled campaign back to draft (its queued start then finds nothing to do)."""
    moved = db.session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == "scheduled")
        .values(status="draft", scheduled_at=None).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise DomainError(N_("Only a scheduled campaign can be called off; this one is not waiting."))
    db.session.refresh(campaign)
    audit(actor, "campaign.cancel", campaign)
    return campaign
