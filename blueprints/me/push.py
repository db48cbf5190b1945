"""Web Push on the member's devices: opt in (static/js/push.js posts the browser's subscription
as JSON), per-category switches and removal (small forms, htmx), on /me/notifications."""
from __future__ import annotations

import hashlib

from flask import abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from blueprints.access import wants_fragment
from blueprints.me.routes import bp
from blueprints.web import domain_message
from models import N_, DomainError, db
from models.push import CATEGORIES, CATEGORY_LABELS, PushSubscription, set_categories, subscribe, unsubscribe


def device_digest(endpoint: str) -> str:
    """How the page recognises "this device" without printing the endpoint (push.js hashes its own)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


@bp.context_processor
def _push_helpers():
    # Functions, not rows: only the page that shows the devices (templates/me/_push_devices.html) queries.
    return {"push_devices_of_member": lambda: PushSubscription.of_member(current_user),
            "push_categories": CATEGORIES, "push_category_labels": CATEGORY_LABELS, "device_digest": device_digest}


def _devices_section():
    """The device list again, in place (htmx), or back to the page it is on."""
    if wants_fragment():
        response = current_app.make_response(render_template("me/_push_devices.html"))
        response.vary.add("HX-Request")
        return response
    return redirect(url_for("me.notifications", _anchor="push-devices"), 303)


def _json_error(message: str, status: int = 422, field: str | None = None, **params):
    db.session.rollback()
    return jsonify({"error": domain_message(DomainError(message, field=field, **params)), "field": field}), status


@bp.get("/push/key")
def push_key():
    """The VAPID public key to subscribe with, and a CSRF token: the service worker re-subscribes
    on `pushsubscriptionchange` with no page open, and posts the new subscription with it."""
    response = jsonify({"publicKey": current_app.config["VAPID_PUBLIC_KEY"], "csrfToken": generate_csrf()})
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/push/subscriptions")
def push_subscribe():
    """Store this browser's subscription ({endpoint, keys: {p256dh, auth}}; `oldEndpoint` when the
    service worker replaces an expired one). 201 with the device's label, or 422 with the reason."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _json_error(N_("Send the subscription as JSON."))
    keys = data.get("keys") if isinstance(data.get("keys"), dict) else {}
    try:
        row = subscribe(current_user, data.get("endpoint"), keys.get("p256dh"), keys.get("auth"),
                        request.headers.get("User-Agent"), replaces=data.get("oldEndpoint"),
                        allow_private=bool(current_app.config.get("PUSH_ALLOW_PRIVATE_ENDPOINTS")))
    except DomainError as error:
        return _json_error(error.message, field=error.field, **error.params)
    db.session.commit()
    return jsonify({"id": row.id, "label": row.label, "categories": row.categories}), 201


@bp.delete("/push/subscriptions")
def push_unsubscribe():
    """Forget this browser ("turn off on this device"), by its endpoint: 204 either way."""
    data = request.get_json(silent=True)
    endpoint = data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(endpoint, str):
        return _json_error(N_("Send the subscription as JSON."))
    unsubscribe(current_user, endpoint=endpoint)
    db.session.commit()
    return "", 204


def _own(subscription_id: int) -> PushSubscription:
    row = PushSubscription.owned_by(current_user, subscription_id)
    if row is None:
        abort(404)
    return row


@bp.post("/push/subscriptions/<int:subscription_id>/categories")
def push_categories(subscription_id):
    """Which categories go to this device (the switches)."""
    set_categories(_own(subscription_id), request.form.getlist("categories"))
    db.session.commit()
    return _devices_section()


@bp.post("/push/subscriptions/<int:subscription_id>/delete")
def push_remove(subscription_id):
    """Remove a device from the list (a lost phone, an old browser)."""
    _own(subscription_id)
    unsubscribe(current_user, subscription_id=subscription_id)
    db.session.commit()
    return _devices_section()
