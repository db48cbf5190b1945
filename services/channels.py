"""The channels behind `notify()`: after the inbox row is committed, its delivery job plans one
delivery row per device (push) or phone (SMS) and sends them.

`notify()` (models/notifications.py) queues `deliver_notification` through the outbox with a
key per notification, so a repeat never fans out twice; the job itself is idempotent (rows are
planned once, only queued rows are sent), as every outbox job must be.
"""
from __future__ import annotations

from sqlalchemy import select

from models import db
from models.accounts import User
from models.notifications import KINDS, Notification, plan_deliveries
from models.outbox import enqueue, job
from models.push import Delivery
from models.sms_rules import next_allowed_send, queue_sms
from models.types import utcnow
from services import push


@job
def deliver_notification(notification_id: int):
    """Plan the deliveries of one notification, queue its SMS (services.tasks.send_sms_notice), and
    send its pushes now."""
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        return
    if KINDS[notification.kind].category == "campaigns":
        now = utcnow()
        at = next_allowed_send(now)
        if at > now:  # marketing never buzzes a phone 21:00–08:00 Shanghai: it waits, it is not dropped
            enqueue(deliver_notification, notification_id, run_at=at, key=f"deliver:{notification_id}:{at.date()}")
            db.session.commit()
            return
    member = db.session.get(User, notification.user_id)
    plan_deliveries(notification, member)
    fresh = db.session.execute(
        select(Delivery.id, Delivery.channel)
        .where(Delivery.notification_id == notification_id, Delivery.status == "queued", Delivery.attempts == 0)
        .order_by(Delivery.id)
    ).all()
    for delivery_id, channel in fresh:
        if channel == "sms":  # texted by its own job, under the SMS rules (cap, quiet hours, consent)
            queue_sms(delivery_id)
    db.session.commit()
    push.send_deliveries([delivery_id for delivery_id, channel in fresh if channel == "push"])
