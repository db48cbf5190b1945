"""Web Push devices on /me/notifications: subscribing (JSON, as static/js/push.js posts it), the
addresses and keys refused, per-category switches, turning a device off. (The service worker:
tests/browser/test_push.py; sending: tests/test_push_delivery.py.)"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from models import db
from models.push import CATEGORIES, PushSubscription, device_label
from tests.push_service import Subscriber, b64url

ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Mobile Safari/537.36")
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.5 Mobile/15E148 Safari/604.1")
FCM = "https://fcm.googleapis.com/fcm/send/"


@pytest.fixture
def local_push(app):
    app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = True
    yield
    app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = False


def post_subscription(client, body, ua=ANDROID_CHROME, **headers):
    return client.post("/me/push/subscriptions", json=body, headers={"User-Agent": ua, **headers})


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(PushSubscription))


def test_a_device_subscribes_once_with_a_readable_label(factories, login_as, local_push):
    member = factories.user()
    client = login_as(member)
    phone = Subscriber()
    response = post_subscription(client, phone.subscription("http://127.0.0.1:9/push/a"))
    assert response.status_code == 201
    assert response.json["label"] == "Android · Chrome" and response.json["categories"] == list(CATEGORIES)
    again = post_subscription(client, Subscriber().subscription("http://127.0.0.1:9/push/a"))  # keys rotated
    assert again.status_code == 201 and again.json["id"] == response.json["id"]
    assert count() == 1
    page = client.get("/me/notifications").get_data(as_text=True)
    assert "在此设备开启推送" in page and "Android · Chrome" in page and "已开启推送的设备" in page
    assert "http://127.0.0.1:9/push/a" not in page, "the endpoint itself is not printed"


def test_labels_name_the_system_and_browser():
    assert device_label(IPHONE_SAFARI) == "iPhone · Safari"
    assert device_label("Mozilla/5.0 (Linux; Android 13; V2154A) MicroMessenger/8.0.47") == "Android · 微信"
    assert device_label("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36 Edg/131.0") == "Windows · Edge"
    assert device_label(None) == "Web"


@pytest.mark.parametrize("endpoint, message", [
    ("http://updates.push.example/x", "推送地址必须使用 https。"),
    ("https://127.0.0.1/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://localhost:8443/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://10.1.2.3/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://192.168.1.20/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://169.254.169.254/latest/meta-data", "此推送地址指向内部网络，已拒绝。"),
    ("https://[::1]/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://[::ffff:127.0.0.1]/push", "此推送地址指向内部网络，已拒绝。"),
    ("https://[fe80::1]/push", "此推送地址指向内部网络，已拒绝。"),
    ("ftp://push.example/x", "推送地址必须使用 https。"),
    ("https://user:pw@push.example/x", "推送地址无效。"),
    ("not a url", "推送地址无效。"),
    (12, "推送地址无效。"),
])
def test_endpoints_the_server_must_not_call_are_refused(factories, login_as, endpoint, message):
    client = login_as(factories.user())
    response = post_subscription(client, {"endpoint": endpoint, "keys": Subscriber().subscription("")["keys"]})
    assert response.status_code == 422
    assert response.json == {"error": message, "field": "endpoint"}
    assert count() == 0


def test_refusals_speak_the_members_language(factories, login_as):
    member = factories.user(locale="en")
    client = login_as(member)
    client.set_cookie("lang", "en")
    response = post_subscription(client, {"endpoint": "https://10.0.0.1/x", "keys": Subscriber().subscription("")["keys"]})
    assert response.json["error"] == "This push address points into a private network and is refused."


@pytest.mark.parametrize("keys", [
    {"p256dh": b64url(b"\x04" + b"\x01" * 63), "auth": b64url(b"a" * 16)},  # 64 bytes
    {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"a" * 16)},  # 65 bytes, not a point on P-256
    {"p256dh": "not base64!", "auth": b64url(b"a" * 16)},
    {"p256dh": Subscriber().p256dh, "auth": b64url(b"a" * 15)},
    {"p256dh": Subscriber().p256dh},
    {},
])
def test_malformed_keys_are_refused(factories, login_as, local_push, keys):
    client = login_as(factories.user())
    response = post_subscription(client, {"endpoint": "http://127.0.0.1:9/push/k", "keys": keys})
    assert response.status_code == 422
    assert response.json["error"] == "此浏览器提交的推送密钥格式有误。请在此设备关闭推送后重新开启。"
    assert count() == 0


def test_a_body_that_is_not_json_is_refused(factories, login_as):
    response = login_as(factories.user()).post("/me/push/subscriptions", data={"endpoint": "x"})
    assert response.status_code == 422 and response.json["error"] == "请以 JSON 格式提交推送订阅。"


def test_the_key_endpoint_gives_the_vapid_key_and_a_token(app, factories, login_as, client):
    response = login_as(factories.user()).get("/me/push/key")
    assert response.json["publicKey"] == app.config["VAPID_PUBLIC_KEY"] and response.json["csrfToken"]
    assert "no-store" in response.headers["Cache-Control"]
    assert client.get("/me/push/key").status_code == 302  # visitors: to the login page


def test_subscribing_needs_the_csrf_header(app, factories, login_as, csrf_on, local_push):
    client = login_as(factories.user())
    page = client.get("/me/notifications").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    body = Subscriber().subscription("http://127.0.0.1:9/push/c")
    assert post_subscription(client, body).status_code == 400
    assert count() == 0
    assert post_subscription(client, body, **{"X-CSRFToken": token}).status_code == 201


def test_switches_choose_the_categories_of_a_device(factories, login_as, local_push):
    member = factories.user()
    client = login_as(member)
    sub_id = post_subscription(client, Subscriber().subscription("http://127.0.0.1:9/push/s")).json["id"]
    response = client.post(f"/me/push/subscriptions/{sub_id}/categories", data={"categories": ["events", "replies", "nonsense"]},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith("<section") and 'id="push-devices"' in fragment
    assert db.session.get(PushSubscription, sub_id).categories == ["events", "replies"]
    assert re.search(r'value="events" checked', fragment) and not re.search(r'value="loyalty" checked', fragment)
    # Without htmx: back to the page.
    response = client.post(f"/me/push/subscriptions/{sub_id}/categories", data={})
    assert response.status_code == 303 and response.headers["Location"].endswith("/me/notifications#push-devices")
    assert db.session.get(PushSubscription, sub_id).categories == []


def test_turning_off_on_this_device_and_removing_from_the_list(factories, login_as, local_push):
    member = factories.user()
    client = login_as(member)
    first = Subscriber().subscription("http://127.0.0.1:9/push/one")
    post_subscription(client, first)
    second_id = post_subscription(client, Subscriber().subscription("http://127.0.0.1:9/push/two"), ua=IPHONE_SAFARI).json["id"]
    assert client.delete("/me/push/subscriptions", json={"endpoint": first["endpoint"]}).status_code == 204
    assert [s.label for s in PushSubscription.of_member(member)] == ["iPhone · Safari"]
    response = client.post(f"/me/push/subscriptions/{second_id}/delete", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "iPhone · Safari" not in response.get_data(as_text=True)
    assert count() == 0


def test_another_members_device_is_not_found(factories, login_as, local_push):
    owner, other = factories.user(), factories.user()
    sub_id = post_subscription(login_as(owner), Subscriber().subscription("http://127.0.0.1:9/push/o")).json["id"]
    intruder = login_as(other)
    assert intruder.post(f"/me/push/subscriptions/{sub_id}/delete").status_code == 404
    assert intruder.post(f"/me/push/subscriptions/{sub_id}/categories", data={}).status_code == 404
    intruder.delete("/me/push/subscriptions", json={"endpoint": "http://127.0.0.1:9/push/o"})
    assert db.session.get(PushSubscription, sub_id).categories == list(CATEGORIES)


def test_a_replaced_subscription_keeps_its_switches(factories, login_as, local_push):
    """What the service worker posts on `pushsubscriptionchange`: the new one, and the old endpoint."""
    member = factories.user()
    client = login_as(member)
    old = Subscriber().subscription("http://127.0.0.1:9/push/old")
    sub_id = post_subscription(client, old).json["id"]
    client.post(f"/me/push/subscriptions/{sub_id}/categories", data={"categories": ["events"]})
    new = {**Subscriber().subscription("http://127.0.0.1:9/push/new"), "oldEndpoint": old["endpoint"]}
    assert post_subscription(client, new).status_code == 201
    [row] = PushSubscription.of_member(member)
    assert row.endpoint.endswith("/push/new") and row.categories == ["events"]


def test_a_device_passed_to_another_member_follows_who_is_signed_in(factories, login_as, local_push):
    first, second = factories.user(), factories.user()
    body = Subscriber().subscription("http://127.0.0.1:9/push/shared")
    post_subscription(login_as(first), body)
    post_subscription(login_as(second), body)
    assert PushSubscription.of_member(first) == [] and len(PushSubscription.of_member(second)) == 1

