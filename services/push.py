"""Web Push sending (pywebpush, VAPID): one batch of deliveries at a time, in parallel.

- Payload: JSON {title, body, url, tag, icon, badge}, kept under 4 KB (the push services'
  limit); the `tag` is per notification, so a repeat (at-least-once delivery) replaces the
  first on the phone instead of showing twice. The `Topic` header does the same in the push
  service's queue while the phone is offline.
- TTL and urgency per category (POLICY).
- VAPID: the key is parsed once per process; the claims dict is FRESH for every call, since
  pywebpush writes `aud` (the endpoint's origin) and `exp` into the dict it is given: a shared
  dict would carry the first push service's `aud` to every other one.
- HTTP: a small thread pool sends a batch in parallel, each thread with its own
  requests.Session (connection reuse to the same push service); every send has a timeout.
- Outcomes: 2xx sent; 404/410 the subscription is gone (deleted, the delivery marked gone);
  429, 5xx and network errors are retried by a job queued at Retry-After (or the back-off),
  until PUSH_MAX_ATTEMPTS, then failed; any other 4xx failed at once. The endpoint is checked
  again before every send (models/push.py `check_endpoint`): DNS answers change.

The HTTP calls run outside any database transaction (SQLite's write lock is never held while
waiting on a push service).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import requests
from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlalchemy import exists, or_, select

from models import DomainError, db
from models.accounts import User
from models.notifications import KINDS, Notification
from models.outbox import enqueue, job
from models.push import CATEGORY_LABELS, Delivery, PushSubscription, check_endpoint
from models.types import utcnow

log = logging.getLogger("cheyou.push")

# Seconds the push service keeps a message for an offline phone, and how eagerly it wakes it.
POLICY = {
    "events": (24 * 3600, "high"),  # a seat, a cancellation, tomorrow's meet-up: now or not at all
    "account": (24 * 3600, "high"),  # security notices
    "replies": (3 * 24 * 3600, "normal"),
    "loyalty": (3 * 24 * 3600, "normal"),
    "campaigns": (2 * 24 * 3600, "low"),  # never wakes a phone on a low battery
}
MAX_PAYLOAD = 3000  # bytes of JSON; the encrypted record adds ~100, under the 4096 limit
RETRY_BACKOFF = (30, 120, 600, 1800)  # seconds before retry n, when the service sends no Retry-After
MAX_RETRY_AFTER = 3600
ICON = "/static/img/icon-192.png"
BADGE = "/static/img/icon-192.png"
RETRY_JOB = "services.push.retry_delivery"


@dataclass(frozen=True)
class Send:
    """One delivery, ready to go: all the HTTP thread needs, no database objects."""

    delivery_id: int
    info: dict
    payload: str
    ttl: int
    urgency: str
    topic: str


@dataclass(frozen=True)
class Result:
    delivery_id: int
    status: int | None  # the push service's HTTP status; None: no answer (network, timeout, refused)
    error: str | None = None
    retry_after: float | None = None
    refused: bool = False  # our own check refused the endpoint: never retried


# -- payload -----------------------------------------------------------------------------------

def payload_for(notification: Notification, locale: str | None) -> dict:
    """The message as the member reads it, in their language."""
    kind = KINDS[notification.kind]
    with force_locale(locale or "zh_CN"):
        title = f"{_('Cheyou')} · {_(CATEGORY_LABELS[kind.category])}"
        body = notification.text
        params = notification.params or {}
        if kind.own_title and params.get("title"):
            title, body = str(params["title"]), str(params.get("body") or body)
    data = {"title": title, "body": body, "url": notification.link or "/me/notifications",
            "tag": tag_of(notification), "icon": ICON, "badge": BADGE}
    while len(json.dumps(data, ensure_ascii=False).encode()) > MAX_PAYLOAD:
        data["body"] = data["body"][: int(len(data["body"]) * 0.8)].rstrip() + "…"
    return data


def tag_of(notification: Notification) -> str:
    """The same notification always has the same tag (and Topic: ≤ 32 URL-safe characters)."""
    return f"cheyou-n{notification.id}"


# -- VAPID and HTTP ----------------------------------------------------------------------------

_vapid_lock = threading.Lock()
_vapid: dict[str, Vapid] = {}


def vapid_key(app: Flask) -> Vapid:
    pem = app.config["VAPID_PRIVATE_KEY"]
    with _vapid_lock:
        if pem not in _vapid:
            # PEM as services/push_keys.py writes it; from the environment, also base64url DER or raw.
            _vapid[pem] = Vapid.from_pem(pem.encode()) if "BEGIN" in pem else Vapid.from_string(pem)
        return _vapid[pem]


_local = threading.local()


def _http(proxy: str | None = None) -> requests.Session:
    """This thread's session (each sending thread keeps its own connections). The environment's
    proxy settings are not read on every send (a fifth of a send's cost): PUSH_PROXY says it once."""
    session = getattr(_local, "session", None)
    if session is None or getattr(_local, "proxy", None) != proxy:
        session = _local.session = requests.Session()
        session.trust_env = False
        session.proxies = {"http": proxy, "https": proxy} if proxy else {}
        _local.proxy = proxy
    return session


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    # Per process (a forked RQ work horse must not reuse its parent's threads) and size.
    key = (os.getpid(), size)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cheyou-push")
        return _pools[key]


def _retry_after(response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def post(send: Send, vapid: Vapid, subject: str, timeout: float, allow_private: bool,
         proxy: str | None = None) -> Result:
    """Encrypt and POST one message; runs in a sending thread."""
    try:
        check_endpoint(send.info["endpoint"], allow_private)
    except DomainError as refused:
        return Result(send.delivery_id, None, f"endpoint refused: {refused.message}", refused=True)
    claims = {"sub": subject}  # fresh: pywebpush fills in aud and exp for this endpoint
    try:
        response = webpush(send.info, data=send.payload, vapid_private_key=vapid, vapid_claims=claims,
                           ttl=send.ttl, headers={"Urgency": send.urgency, "Topic": send.topic},
                           timeout=timeout, requests_session=_http(proxy))
        return Result(send.delivery_id, response.status_code)
    except WebPushException as exc:
        response = exc.response
        if response is None:
            return Result(send.delivery_id, None, str(exc)[:500])
        return Result(send.delivery_id, response.status_code, f"{response.status_code} {response.text[:300]}",
                      _retry_after(response))
    except requests.RequestException as exc:  # refused, reset, timed out
        return Result(send.delivery_id, None, f"{type(exc).__name__}: {exc}"[:500])


# -- a batch -----------------------------------------------------------------------------------

def _prepare(delivery_ids) -> list[Send]:
    """What to send, read in one query; deliveries whose device was deleted meanwhile are gone."""
    orphans = db.session.scalars(select(Delivery).where(
        Delivery.id.in_(list(delivery_ids)), Delivery.channel == "push", Delivery.status == "queued",
        or_(Delivery.subscription_id.is_(None), ~exists().where(PushSubscription.id == Delivery.subscription_id))))
    for delivery in orphans:
        delivery.status, delivery.subscription_id = "gone", None
    rows = db.session.execute(
        select(Delivery, PushSubscription, Notification, User.locale)
        .join(PushSubscription, PushSubscription.id == Delivery.subscription_id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .join(User, User.id == Notification.user_id)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.channel == "push", Delivery.status == "queued")
    ).all()
    sends = []
    for delivery, subscription, notification, locale in rows:
        ttl, urgency = POLICY[KINDS[notification.kind].category]
        sends.append(Send(delivery.id, subscription.info,
                          json.dumps(payload_for(notification, locale), ensure_ascii=False),
                          ttl, urgency, tag_of(notification)))
    return sends


def send_deliveries(delivery_ids) -> list[Result]:
    """Send the queued push deliveries among DELIVERY_IDS, in parallel, and record each outcome
    (committed). Deliveries already sent, failed or gone are left alone, so a repeat is harmless."""
    app = current_app._get_current_object()
    sends = _prepare(delivery_ids)
    db.session.commit()  # end the read: no transaction stays open while the push services answer
    if not sends:
        return []
    vapid, subject = vapid_key(app), app.config["VAPID_SUBJECT"]
    timeout = float(app.config.get("PUSH_TIMEOUT", 10))
    allow_private = bool(app.config.get("PUSH_ALLOW_PRIVATE_ENDPOINTS"))
    proxy = app.config.get("PUSH_PROXY") or None
    if len(sends) == 1:
        results = [post(sends[0], vapid, subject, timeout, allow_private, proxy)]
    else:
        pool = _pool(int(app.config.get("PUSH_THREADS", 32)))
        results = list(pool.map(lambda s: post(s, vapid, subject, timeout, allow_private, proxy), sends))
    record(results, int(app.config.get("PUSH_MAX_ATTEMPTS", 5)))
    return results


def record(results: list[Result], max_attempts: int) -> None:
    """Write what the push services answered; queue the retries; delete subscriptions that are gone."""
    now = utcnow()
    ids = [result.delivery_id for result in results]
    deliveries = {d.id: d for d in db.session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    devices = {s.id: s for s in db.session.scalars(select(PushSubscription).where(
        PushSubscription.id.in_([d.subscription_id for d in deliveries.values() if d.subscription_id])))}
    for result in results:
        delivery = deliveries.get(result.delivery_id)
        if delivery is None or delivery.status != "queued":
            continue
        delivery.attempts += 1
        delivery.http_status = result.status
        delivery.last_error = result.error
        status = result.status
        if status is not None and 200 <= status < 300:
            delivery.status, delivery.sent_at = "sent", now
            subscription = devices.get(delivery.subscription_id)
            if subscription is not None:
                subscription.last_success_at = now
        elif status in (404, 410):
            delivery.status = "gone"
            subscription = devices.pop(delivery.subscription_id, None)
            delivery.subscription_id = None
            if subscription is not None:
                db.session.delete(subscription)
        elif not result.refused and (status is None or status == 429 or status >= 500):
            if delivery.attempts >= max_attempts:
                delivery.status = "failed"
                log.warning("push delivery %s failed for good after %s attempts: %s", delivery.id,
                            delivery.attempts, result.error)
            else:
                delay = result.retry_after
                if delay is None:
                    delay = RETRY_BACKOFF[min(delivery.attempts, len(RETRY_BACKOFF)) - 1]
                enqueue(RETRY_JOB, delivery.id, run_at=now + timedelta(seconds=delay),
                        key=f"push-retry:{delivery.id}:{delivery.attempts}")
        else:
            delivery.status = "failed"
    db.session.commit()


@job
def retry_delivery(delivery_id: int):
    """Try one push delivery again (queued by `record` at Retry-After or the back-off)."""
    send_deliveries([delivery_id])
