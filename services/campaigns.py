"""Campaign fan-out through the outbox: batches of members in id order, each batch one commit.

`fan_out(campaign, after)` takes the next batch of the audience above member id AFTER and, in
one transaction, writes each member's target row (unique per campaign × member), inbox row
(keyed per campaign) and delivery rows, queues the SMS and the push batch, moves the
campaign's progress mark and queues the next batch. A worker killed anywhere loses nothing
and repeats nothing: before the commit the batch never happened, after it the next job
carries on, and a rerun of a finished batch finds the mark past it and returns.

`send_batch` posts a batch's pushes (services/push.py, in parallel). Killed mid-way, it runs
again and re-sends the rows not yet recorded: a device gets a campaign at least once and at
most twice, and the phone shows it once (the notification's tag).

Marketing kinds wait for 08:00 Shanghai when started in quiet hours (21:00–08:00)."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import insert, select

from models import db
from models.accounts import User
from models.campaigns.audience import member_ids
from models.campaigns.editing import campaign_audience
from models.campaigns.model import Campaign, CampaignTarget
from models.campaigns.returns import return_link
from models.notifications import KINDS, Notification
from models.outbox import enqueue, job
from models.push import Delivery, PushSubscription
from models.sms_rules import next_allowed_send, queue_sms
from models.types import utcnow
from services import push

DEFAULT_BATCH = 500
LEASE = timedelta(minutes=3)  # a batch's database work, or its pushes (32 in flight, 10 s timeout each)


def _batch_size() -> int:
    return int(current_app.config.get("CAMPAIGN_BATCH") or DEFAULT_BATCH)


def _starts(campaign: Campaign, now) -> bool:
    """Whether the fan-out may go on now (a scheduled campaign starts when its time has come;
    a start job left behind by a cancelled or moved schedule finds nothing to do)."""
    if campaign.status == "scheduled" and campaign.scheduled_at is not None and campaign.scheduled_at <= now:
        campaign.status, campaign.started_at = "sending", now
        return True
    return campaign.status == "sending"


@job(lease=LEASE)
def fan_out(campaign_id: int, after: int):
    """Target the next batch of CAMPAIGN's audience above member id AFTER (see the module doc)."""
    fan_out_batch(campaign_id, after, utcnow())


def fan_out_batch(campaign_id: int, after: int, now) -> int | None:
    """One batch of the fan-out as at NOW, committed; the next batch is queued as a job.
    Returns the member id the next batch starts after, or None when there is none to do here
    (finished, not started, a stale rerun, or waiting for the morning)."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or not _starts(campaign, now) or after != campaign.fanout_after:
        db.session.commit()
        return None
    if campaign.is_marketing:
        allowed = next_allowed_send(now)
        if allowed > now:  # never 21:00–08:00 Shanghai: the same batch, at 08:00
            enqueue(fan_out, campaign_id, after, run_at=allowed, key=f"campaign:{campaign_id}:after:{after}:{allowed.date()}")
            db.session.commit()
            return None
    ids = list(db.session.scalars(member_ids(campaign_audience(campaign), after, _batch_size())))
    if not ids:
        campaign.status, campaign.finished_at = "sent", now
        db.session.commit()
        return None
    push_rows = _target(campaign, ids, now)
    campaign.fanout_after = ids[-1]
    if push_rows:
        enqueue(send_batch, campaign_id, ids[0], ids[-1], key=f"campaign:{campaign_id}:send:{ids[0]}")
    enqueue(fan_out, campaign_id, ids[-1], key=f"campaign:{campaign_id}:after:{ids[-1]}")
    db.session.commit()
    return ids[-1]


def _target(campaign: Campaign, ids: list[int], now) -> int:
    """Targets, inbox rows and delivery rows for the members IDS not yet targeted; the SMS are
    queued. Returns how many push deliveries wait to be sent.

    Plain multi-row INSERTs (executemany), not ORM objects: on PostgreSQL the unit of work and
    long RETURNING statements were most of a batch's time (bench/campaign_fanout.py)."""
    done = set(db.session.scalars(select(CampaignTarget.user_id).where(
        CampaignTarget.campaign_id == campaign.id, CampaignTarget.user_id.in_(ids))))
    fresh = [user_id for user_id in ids if user_id not in done]
    if not fresh:
        return 0
    kind = KINDS[campaign.notification_kind]
    params = {"title": campaign.title, "body": campaign.body, "campaign": campaign.id}
    if campaign.gift_points:
        params["points"] = campaign.gift_points
    db.session.execute(insert(Notification), [
        {"user_id": user_id, "kind": campaign.notification_kind, "params": params,
         "link": return_link(campaign.id, user_id), "dedupe_key": campaign.dedupe_key, "created_at": now}
        for user_id in fresh])
    notes = dict(db.session.execute(select(Notification.user_id, Notification.id).where(
        Notification.dedupe_key == campaign.dedupe_key, Notification.user_id.in_(fresh))).all())
    db.session.execute(insert(CampaignTarget), [
        {"campaign_id": campaign.id, "user_id": user_id, "notification_id": notes[user_id], "created_at": now}
        for user_id in fresh])
    channels = set(campaign.channels or ())
    rows = []
    if "push" in channels:
        for device_id, user_id, categories in db.session.execute(
                select(PushSubscription.id, PushSubscription.user_id, PushSubscription.categories)
                .where(PushSubscription.user_id.in_(fresh)).order_by(PushSubscription.id)):
            if kind.category in (categories or ()):
                rows.append({"notification_id": notes[user_id], "channel": "push", "subscription_id": device_id})
    pushes = len(rows)
    if "sms" in channels:
        rows += [{"notification_id": notes[user_id], "channel": "sms", "subscription_id": None}
                 for user_id in db.session.scalars(select(User.id).where(
                     User.id.in_(fresh), User.phone.is_not(None), User.phone_verified_at.is_not(None)))]
    if rows:
        db.session.execute(insert(Delivery), [{**row, "status": "queued", "attempts": 0, "created_at": now}
                                              for row in rows])
    if pushes < len(rows):
        for delivery_id in db.session.scalars(select(Delivery.id).where(
                Delivery.notification_id.in_(list(notes.values())), Delivery.channel == "sms")):
            queue_sms(delivery_id, now)
    return pushes


@job(lease=LEASE)
def send_batch(campaign_id: int, first_member: int, last_member: int):
    """Post the queued pushes of one fan-out batch (members FIRST_MEMBER…LAST_MEMBER)."""
    ids = list(db.session.scalars(
        select(Delivery.id).join(CampaignTarget, CampaignTarget.notification_id == Delivery.notification_id)
        .where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.user_id.between(first_member, last_member),
               Delivery.channel == "push", Delivery.status == "queued", Delivery.attempts == 0)
        .order_by(Delivery.id)))
    push.send_deliveries(ids)
