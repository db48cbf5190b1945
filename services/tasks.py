"""The jobs themselves: small functions that take ids, load what they need and commit once."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from models import SmsCode, db
from models.types import utcnow
from services.jobs import job, periodic


@periodic(timedelta(hours=6))
def purge_sms_codes():
    """Delete SMS codes older than a day: they are useless and hold phone numbers."""
    db.session.execute(delete(SmsCode).where(SmsCode.created_at < utcnow() - timedelta(days=1)))
    db.session.commit()


@job
def send_sms_code(phone: str, code: str, purpose: str):
    """Hand a verification code to the configured SMS provider (outside the request)."""
    from flask import current_app

    from services.sms import get_backend

    get_backend(current_app).send_code(phone, code, purpose)
