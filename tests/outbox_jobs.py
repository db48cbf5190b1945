"""Jobs for the outbox tests, importable by the worker subprocesses those tests start
(`python -c "import tests.outbox_jobs; ..."`), so production code carries no test hook.

Their side effects are inbox rows (`Notification`, kind "welcome") tagged in their params, so
a test counts how often each one happened, whichever process ran it."""
from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import select

from models import Notification, User, db, notify
from models.outbox import job

SLOW_LEASE = 3.0  # seconds: short, so the killed-worker test waits little for the reclaim
ATTEMPTS: Counter = Counter()  # attempts of `flaky`, in the process that ran them


@job
def touch(user_id: int, tag: str, seconds: float = 0.0):
    """Not idempotent on purpose: each run adds a row, so a test sees every run."""
    time.sleep(seconds)
    db.session.add(Notification(user_id=user_id, kind="welcome", params={"tag": tag}))
    db.session.commit()


@job(lease=SLOW_LEASE)
def slow_once(user_id: int, tag: str, seconds: float):
    """Commits its effect (keyed by TAG), then takes SECONDS; a rerun finds the effect and returns."""
    done = db.session.scalar(select(Notification.id).where(Notification.user_id == user_id,
                                                          Notification.dedupe_key == tag))
    if done is not None:
        return
    notify(db.session.get(User, user_id), "welcome", {"tag": tag}, dedupe_key=tag)
    db.session.commit()
    time.sleep(seconds)


@job(retries=3, backoff=(10, 60))
def flaky(key: str, failures: int):
    """Fails its first FAILURES attempts."""
    ATTEMPTS[key] += 1
    if ATTEMPTS[key] <= failures:
        raise RuntimeError(f"{key}: attempt {ATTEMPTS[key]} fails")


def effects(tag: str | None = None) -> Counter:
    """How many inbox rows each tag has (committed ones)."""
    db.session.rollback()
    counts = Counter(params.get("tag") for params in db.session.scalars(select(Notification.params)))
    return Counter({tag: counts[tag]}) if tag else counts
