"""The jobs themselves: small functions that take ids, load what they need and commit once."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, select

from models import SmsCode, db, sms_rules
from models.accounts import User
from models.events import Event, complete_event, due_for_completion, pay_attendances, send_reminders
from models.events import settle_cancelled_event as settle
from models.loyalty import expire_due, growth_aged_out, members_with_points_due, note_level_change, refresh_standing
from models.loyalty import sweep_vouchers as sweep
from models.notifications import Notification
from models.outbox import enqueue, job, periodic, purge_finished
from models.push import Delivery
from models.sms_rules import next_allowed_send
from models.stories import Story
from models.types import utcnow
from services import campaigns, channels, mail, sms  # noqa: F401  (they register the campaign and delivery jobs)
from services.images import copy_photo, delete_photo, removed_unless_saved
from services.storage import get_storage


@periodic(timedelta(hours=6))
def purge_sms_codes():
    """Delete SMS codes older than a day: they are useless and hold phone numbers."""
    db.session.execute(delete(SmsCode).where(SmsCode.created_at < utcnow() - timedelta(days=1)))
    db.session.commit()


@job(sensitive=True)
def send_sms_code(phone: str, code: str, purpose: str):
    """Hand a verification code to the configured SMS provider (outside the request).

    Sensitive: the code waits in the outbox in clear text until it is sent; then the row's
    arguments are cleared (services/jobs.py)."""
    sms.get_backend(current_app).send_code(phone, code, purpose)


@job(retries=4, backoff=(30, 120, 600, 1800))
def send_sms_notice(delivery_id: int):
    """Text one SMS delivery row (queued by `models.sms_rules.queue_sms`) under the SMS rules.

    Idempotent: a row no longer `queued` was settled by an earlier run. A run that finds itself
    in quiet hours (a retry that slid past 21:00) queues itself again for 08:00. The checks and
    the row's place under the daily cap are committed first, so the provider is called with no
    transaction open (SQLite's write lock is never held over the network). A provider error is
    recorded on the row; a rate limit or a hiccup is raised for the outbox to retry with back-off,
    and a number the provider refuses (`SmsRejected`: `retryable` False) fails the job at once."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.channel != "sms" or delivery.status != "queued":
        return
    notification = db.session.get(Notification, delivery.notification_id)
    now = utcnow()
    allowed = next_allowed_send(now)
    if allowed > now:
        enqueue(send_sms_notice, delivery_id, run_at=allowed, key=f"sms:{delivery_id}:{allowed.date()}")
        db.session.commit()
        return
    # One sender per member at a time (PostgreSQL; SQLite jobs write one at a time anyway), so two
    # notices texted at once cannot both take the last place under the daily cap.
    member = db.session.scalars(select(User).where(User.id == notification.user_id).with_for_update()).one()
    reason = sms_rules.refusal(member, notification.kind, now, besides=delivery)
    if reason is not None:
        delivery.status, delivery.last_error = "failed", reason
        db.session.commit()
        return
    site = (current_app.config.get("SITE_URL") or "http://localhost:5000").rstrip("/")
    link = site + notification.link if (notification.link or "").startswith("/") else notification.link
    unsubscribe = (f"{site}/u/{sms_rules.unsubscribe_token(member)}"
                   if sms_rules.is_marketing(notification.kind) else None)
    phone, kind, params = member.phone, notification.kind, dict(notification.params or {})
    delivery.attempts += 1
    delivery.sent_at = now  # holds its place under today's cap while it is being sent
    attempts = delivery.attempts
    db.session.commit()
    try:
        sms.send_notice(phone, kind, params, link, unsubscribe)
    except sms.SmsError as exc:
        final = not exc.retryable or attempts >= send_sms_notice.max_attempts
        delivery = db.session.get(Delivery, delivery_id)
        delivery.last_error = str(exc)[:1000]
        if final:
            delivery.status = "failed"
        db.session.commit()
        raise
    delivery = db.session.get(Delivery, delivery_id)
    delivery.status, delivery.sent_at, delivery.last_error = "sent", utcnow(), None
    db.session.commit()


@periodic(timedelta(hours=6))
def purge_finished_jobs():
    """Delete outbox rows done more than 14 days ago (failed ones after 90): the table stays small."""
    purge_finished(db.session)
    db.session.commit()


@job
def send_password_reset_mail(user_id: int, site_url: str, locale: str):
    """E-mail a password reset link (queued by the forgot-password form, after its commit).

    The link is signed here, at sending time, so no credential waits in the job queue; a retried
    job sends a second link, and both die together once either is used."""
    user = db.session.get(User, user_id)
    if user is None or not user.email:
        return
    link = f"{site_url.rstrip('/')}/auth/reset/{user.reset_token(current_app.config['SECRET_KEY'])}"
    with force_locale(user.locale or locale or "zh_CN"):
        subject = _("Reset your Cheyou password")
        body = "\n\n".join([
            _("Hello %(nickname)s,", nickname=user.nickname),
            _("Someone, hopefully you, asked to reset the password of your Cheyou account. "
              "Open this link within 1 hour to choose a new one:"),
            link,
            _("The link works once. If you did not ask for it, ignore this e-mail: your password stays as it is."),
            _("Cheyou"),
        ])
    mail.get_backend(current_app).send(user.email, subject, body + "\n")


@periodic(timedelta(hours=1))
def expire_points():
    """Write expiry postings for every member holding points earned more than 12 months ago."""
    for user_id in members_with_points_due():
        expire_due(db.session.get(User, user_id))
        db.session.commit()  # one member at a time: a long run never holds the lock for long


@periodic(timedelta(hours=6))
def refresh_levels():
    """Notify members whose level fell because growth older than the growth window stopped counting
    (growth that aged out within the last week: slack for runs missed while the workers were down)."""
    now = utcnow()
    for user_id in growth_aged_out(now, within=timedelta(days=7)):
        member = db.session.get(User, user_id)
        refresh_standing(member, now)  # the cached level falls too, before the member's next page
        note_level_change(member, now)
        db.session.commit()  # one member at a time: the member lock is held briefly


@periodic(timedelta(hours=1))
def sweep_vouchers():
    """Mark vouchers past their date expired (never refunded), and remind owners 3 days ahead."""
    sweep()
    db.session.commit()


@periodic(timedelta(hours=1))
def remind_events():
    """Tell confirmed members, the day before, that their event is tomorrow (once each)."""
    send_reminders()
    db.session.commit()


@job
def pay_event_attendance(event_id: int):
    """The attendance rewards of a completed event (queued by `complete_event`)."""
    pay_attendances(db.session.get(Event, event_id))
    db.session.commit()


@job
def settle_cancelled_event(event_id: int):
    """Refunds and messages for a cancelled event (queued by `cancel_event`)."""
    settle(db.session.get(Event, event_id))
    db.session.commit()


@periodic(timedelta(hours=1))
def complete_events():
    """Close events that ended hours ago and nobody marked completed: pay attendance, count no-shows."""
    for event_id in due_for_completion():
        complete_event(db.session.get(Event, event_id))
        db.session.commit()  # one event at a time: a long run never holds the lock for long


@job
def delete_photo_files(*keys: str):
    """Remove the files of a deleted story's photos (queued by `delete_story`, after its commit)."""
    delete_photo(get_storage(current_app), *keys)


@job
def rename_story_photos(story_id: int):
    """Move a hidden story's photos to new random names (queued by hiding it).

    The files are copied first and the new keys committed, then the old files go: at every
    moment the rows point at files that exist, and a failed run leaves no orphan copy."""
    story = db.session.get(Story, story_id)
    if story is None or story.status == "deleted" or not story.photos:
        return
    storage = get_storage(current_app)
    old_keys = []
    with removed_unless_saved(storage) as written:
        for photo in story.photos:
            new_full, new_thumb = copy_photo(storage, photo.full_key, photo.thumb_key)
            written.extend((new_full, new_thumb))
            old_keys.extend((photo.full_key, photo.thumb_key))
            photo.full_key, photo.thumb_key = new_full, new_thumb
        db.session.commit()
    delete_photo(storage, *old_keys)
