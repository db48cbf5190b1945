"""A campaign's report, live while it runs: a few grouped queries, never a row per member.

Devices and members are counted apart. Per channel, each delivery row counts once (a member
with two phones has two push rows). Per member, each target has one outcome — delivered (some
channel took it), failed, gone (only devices the push service had dropped), waiting (still
queued) or not reachable (the inbox only) — so the outcomes add up to the targeted count."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select

from models import db
from models.campaigns.model import CHANNELS, RECALL_RATE_TARGET, Campaign, CampaignTarget
from models.push import DELIVERY_STATUSES, Delivery
from models.sms_rules import next_allowed_send
from models.types import utcnow

OUTCOMES = ("delivered", "failed", "gone", "waiting", "unreachable")


@dataclass
class CampaignReport:
    targeted: int = 0
    channels: dict = field(default_factory=lambda: {c: dict.fromkeys(DELIVERY_STATUSES, 0) for c in CHANNELS})
    outcomes: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    clicked: int = 0
    returned: int = 0
    target_rate: float = RECALL_RATE_TARGET
    waits_until: datetime | None = None  # a marketing campaign sent in quiet hours goes out then

    @property
    def recall_rate(self) -> float | None:
        """Returned within 7 days ÷ targeted (None before anyone is targeted)."""
        return self.returned / self.targeted if self.targeted else None

    @property
    def meets_target(self) -> bool:
        return self.recall_rate is not None and self.recall_rate >= self.target_rate

    @property
    def adds_up(self) -> bool:
        return sum(self.outcomes.values()) == self.targeted


def report_of(campaign: Campaign, now: datetime | None = None) -> CampaignReport:
    report = CampaignReport()
    if campaign.status == "sending" and campaign.is_marketing:
        now = now or utcnow()
        allowed = next_allowed_send(now)
        report.waits_until = allowed if allowed > now else None
    targets = CampaignTarget.campaign_id == campaign.id
    report.targeted, report.clicked, report.returned = db.session.execute(
        # returned_at is only ever set within RETURN_WINDOW (models/campaigns/returns.py)
        select(func.count(), func.count(CampaignTarget.clicked_at), func.count(CampaignTarget.returned_at))
        .where(targets)
    ).one()
    for channel, status, number in db.session.execute(
        select(Delivery.channel, Delivery.status, func.count())
        .join(CampaignTarget, CampaignTarget.notification_id == Delivery.notification_id)
        .where(targets).group_by(Delivery.channel, Delivery.status)
    ):
        report.channels.setdefault(channel, dict.fromkeys(DELIVERY_STATUSES, 0))[status] = number
    # One outcome per member: the best its deliveries reached (sent > queued > failed > gone).
    rank = case((Delivery.status == "sent", 4), (Delivery.status == "queued", 3),
                (Delivery.status == "failed", 2), else_=1)
    best = (select(CampaignTarget.id, func.max(rank).label("best"))
            .join(Delivery, Delivery.notification_id == CampaignTarget.notification_id)
            .where(targets).group_by(CampaignTarget.id).subquery())
    names = {4: "delivered", 3: "waiting", 2: "failed", 1: "gone"}
    reached = 0
    for value, number in db.session.execute(select(best.c.best, func.count()).group_by(best.c.best)):
        report.outcomes[names[value]] += number
        reached += number
    report.outcomes["unreachable"] = report.targeted - reached
    return report
