"""The jobs themselves: small functions that take ids, load what they need and commit once."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from models import SmsCode, db
from models.types import utcnow
from services.jobs import job, periodic


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
    from flask import current_app

    from services.sms import get_backend

    get_backend(current_app).send_code(phone, code, purpose)


@periodic(timedelta(hours=6))
def purge_finished_jobs():
    """Delete outbox rows done more than 14 days ago (failed ones after 90): the table stays small."""
    from models.outbox import purge_finished

    purge_finished(db.session)
    db.session.commit()


@job
def send_password_reset_mail(user_id: int, site_url: str, locale: str):
    """E-mail a password reset link (queued by the forgot-password form, after its commit).

    The link is signed here, at sending time, so no credential waits in the job queue; a retried
    job sends a second link, and both die together once either is used."""
    from flask import current_app
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from models.accounts import User
    from services.mail import get_backend

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
    get_backend(current_app).send(user.email, subject, body + "\n")


@periodic(timedelta(hours=1))
def expire_points():
    """Write expiry postings for every member holding points earned more than 12 months ago."""
    from models.accounts import User
    from models.points import PointsPosting, expire_due

    due = db.session.scalars(
        select(PointsPosting.user_id).where(PointsPosting.expires_at <= utcnow(), PointsPosting.points > 0).distinct()
    ).all()
    for user_id in due:
        expire_due(db.session.get(User, user_id))
        db.session.commit()  # one member at a time: a long run never holds the lock for long


@periodic(timedelta(hours=6))
def refresh_levels():
    """Notify members whose level fell because growth older than a year stopped counting."""
    from models.accounts import User
    from models.points import PointsPosting, note_level_change

    now = utcnow()
    aged = db.session.scalars(
        select(PointsPosting.user_id).where(
            PointsPosting.growth > 0,
            PointsPosting.created_at <= now - timedelta(days=365),
            PointsPosting.created_at > now - timedelta(days=372),
        ).distinct()
    ).all()
    for user_id in aged:
        note_level_change(db.session.get(User, user_id), now)
    db.session.commit()


@periodic(timedelta(hours=1))
def sweep_vouchers():
    """Mark vouchers past their date expired (never refunded), and remind owners 3 days ahead."""
    from models.notifications import notify
    from models.rewards import Voucher

    now = utcnow()
    db.session.execute(
        update(Voucher).where(Voucher.state == "issued", Voucher.expires_at <= now).values(state="expired")
    )
    expiring = db.session.scalars(
        select(Voucher).where(Voucher.state == "issued", Voucher.expires_at > now,
                              Voucher.expires_at <= now + timedelta(days=3))
    ).all()
    for voucher in expiring:
        notify(voucher.user, "voucher_expiring", {"reward": voucher.reward.title, "date": voucher.last_day.isoformat()},
               link=f"/me/vouchers/{voucher.code}", dedupe_key=f"voucher-expiring:{voucher.id}")
    db.session.commit()


@periodic(timedelta(hours=1))
def remind_events():
    """Tell confirmed members, the day before, that their event is tomorrow (once each)."""
    from models.events import send_reminders

    send_reminders()
    db.session.commit()


@job
def pay_event_attendance(event_id: int):
    """The attendance rewards of a completed event (queued by `complete_event`)."""
    from models.events import Event, pay_attendances

    pay_attendances(db.session.get(Event, event_id))
    db.session.commit()


@job
def settle_cancelled_event(event_id: int):
    """Refunds and messages for a cancelled event (queued by `cancel_event`)."""
    from models.events import Event, settle_cancelled_event as settle

    settle(db.session.get(Event, event_id))
    db.session.commit()


@periodic(timedelta(hours=1))
def complete_events():
    """Close events that ended hours ago and nobody marked completed: pay attendance, count no-shows."""
    from models.events import Event, complete_event, due_for_completion

    for event_id in due_for_completion():
        complete_event(db.session.get(Event, event_id))
        db.session.commit()  # one event at a time: a long run never holds the lock for long


@job
def delete_photo_files(*keys: str):
    """Remove the files of a deleted story's photos (queued by `delete_story`, after its commit)."""
    from flask import current_app

    from services.images import delete_photo
    from services.storage import get_storage

    delete_photo(get_storage(current_app), *keys)


@job
def rename_story_photos(story_id: int):
    """Move a hidden story's photos to new random names (queued by hiding it).

    The files are copied first and the new keys committed, then the old files go: at every
    moment the rows point at files that exist, and a failed run leaves no orphan copy."""
    from flask import current_app

    from models.stories import Story
    from services.images import copy_photo, delete_photo, removed_unless_saved
    from services.storage import get_storage

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
