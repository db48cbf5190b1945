"""SMS through Alibaba Cloud's official SDK, end to end against a local stand-in for the provider.

A small HTTP server on 127.0.0.1 plays dysmsapi: it checks the request the SDK builds (action,
phone, sign name, template, template parameters, an ACS3-HMAC-SHA256 signature it verifies with
the secret) and answers as the provider does: OK, flow control (rate limit), an illegal number.
No network, no mocks of our code: notices go notify() → delivery job → SMS job → SDK → server.
The clock of the SMS rules is set (Shanghai daytime unless a test says otherwise)."""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import threading
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from sqlalchemy import select

from models import JobRow, User, db, notify
from models.consents import Consent
from models.notifications import KINDS, Kind
from models.push import Delivery
from models.sms_rules import next_allowed_send, unsubscribe_token
from models.types import SHANGHAI
from services import sms

KEY_ID, SECRET, SIGN = "test-key-id", "test-key-secret", "车友圈"
TEMPLATES = {"event_promoted": "SMS_100001", "event_cancelled": "SMS_100002", "login": "SMS_100009",
             "campaign_test": "SMS_100020"}
SITE = "https://cheyou.example"
OK = {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5-B967-440B-8683"}
RATE_LIMITED = {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": "R-2"}
BAD_NUMBER = {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "R-3"}
SEND_JOB = "services.tasks.send_sms_notice"


def shanghai(y, m, d, hh, mm) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(timezone.utc)


# -- the provider's stand-in ---------------------------------------------------------------------

def _signature_ok(method: str, path: str, query: str, headers, body: bytes) -> bool:
    """Verify ACS3-HMAC-SHA256 as Alibaba Cloud documents it (computed here, not by the SDK)."""
    auth = headers.get("Authorization", "")
    match = re.fullmatch(r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})", auth)
    if not match or match.group(1) != KEY_ID:
        return False
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload_hash:
        return False
    params = sorted(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in params)
    signed = match.group(2).split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join([method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload_hash])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(3))


class FakeDysms:
    """Answers each SendSms with the next scripted answer (then OK); records what it got."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                fake.requests.append({
                    "action": self.headers.get("x-acs-action"), "version": self.headers.get("x-acs-version"),
                    "query": query, "signed": _signature_ok("POST", parts.path, parts.query, self.headers, body),
                })
                answer = fake.answers.pop(0) if fake.answers else OK
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def sent_to(self) -> list[str]:
        return [r["query"]["PhoneNumbers"] for r in self.requests]


CONFIG = {"SMS_BACKEND": "aliyun", "ALIYUN_ACCESS_KEY_ID": KEY_ID, "ALIYUN_ACCESS_KEY_SECRET": SECRET,
          "SMS_SIGN_NAME": SIGN, "SMS_TEMPLATES": json.dumps(TEMPLATES), "SITE_URL": SITE, "SMS_NOTICES_PER_DAY": 2}


@pytest.fixture
def provider(app):
    """The app texting through the SDK to the local stand-in, for this test."""
    fake = FakeDysms()
    saved = {name: app.config.get(name) for name in [*CONFIG, "SMS_ENDPOINT"]}
    saved_backend = app.extensions.get("sms")
    app.config.update(CONFIG, SMS_ENDPOINT=fake.url)
    app.extensions["sms"] = sms.AliyunSmsBackend(app)
    yield fake
    app.config.update(saved)
    if saved_backend is None:
        app.extensions.pop("sms", None)
    else:
        app.extensions["sms"] = saved_backend
    fake.close()


@pytest.fixture
def clock(monkeypatch):
    """The SMS rules' clock, settable: `clock.now = …`. Starts on a Shanghai day at 10:00, in the
    future: a job deferred to 08:00 is not yet due for the job runner, which reads the real clock."""

    class Clock:
        now = shanghai(2030, 6, 3, 10, 0)

    for where in ("models.sms_rules.utcnow", "services.tasks.utcnow", "services.channels.utcnow"):
        monkeypatch.setattr(where, lambda: Clock.now)
    return Clock


@pytest.fixture
def campaign_kind(monkeypatch):
    """A marketing kind texted to opted-in members (the campaigns themselves come later)."""
    monkeypatch.setitem(KINDS, "campaign_test", Kind("Your return gift: %(points)s points are waiting.",
                                                     "campaigns", sms="always"))
    return "campaign_test"


def member(factories, phone="13911112222", **kw) -> User:
    return factories.user(login=phone, verified=True, **kw)


def sms_deliveries(user: User) -> list[Delivery]:
    from models import Notification

    return list(db.session.scalars(
        select(Delivery).join(Notification, Notification.id == Delivery.notification_id)
        .where(Notification.user_id == user.id, Delivery.channel == "sms").order_by(Delivery.id)))


def sms_jobs() -> list[JobRow]:
    return list(db.session.scalars(select(JobRow).where(JobRow.name == SEND_JOB).order_by(JobRow.id)))


def promote(user: User, title="周末露营", n=1):
    notify(user, "event_promoted", {"title": title}, link="/events/7", dedupe_key=f"promoted:{title}:{n}")
    db.session.commit()


# -- sending --------------------------------------------------------------------------------------

def test_a_notice_goes_through_the_sdk_as_the_provider_expects(provider, clock, factories):
    user = member(factories)
    promote(user)
    (request,) = provider.requests
    assert request["action"] == "SendSms" and request["version"] == "2017-05-25"
    assert request["signed"], "the request carries a valid ACS3-HMAC-SHA256 signature for our key"
    query = request["query"]
    assert query["PhoneNumbers"] == "13911112222"
    assert query["SignName"] == SIGN
    assert query["TemplateCode"] == "SMS_100001"
    assert json.loads(query["TemplateParam"]) == {"title": "周末露营", "link": f"{SITE}/events/7"}
    db.session.expire_all()
    (delivery,) = sms_deliveries(user)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, None)
    assert delivery.sent_at == clock.now


def test_a_verification_code_goes_through_its_purpose_template(provider, client, factories):
    factories.user(login="13922223333", verified=True)
    response = client.post("/auth/login/sms/send", data={"phone": "13922223333"})
    assert response.status_code in (200, 302)
    (request,) = provider.requests
    assert request["signed"] and request["query"]["TemplateCode"] == "SMS_100009"
    assert re.fullmatch(r"\d{6}", json.loads(request["query"]["TemplateParam"])["code"])


def test_rate_limited_by_the_provider_the_job_retries_and_delivers_once(provider, clock, factories):
    provider.answers = [RATE_LIMITED]
    user = member(factories)
    promote(user)
    assert provider.sent_to == ["13911112222", "13911112222"], "refused once, then taken"
    db.session.expire_all()
    (delivery,) = sms_deliveries(user)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    (row,) = sms_jobs()
    assert (row.status, row.attempts) == ("done", 2)


def test_a_provider_that_keeps_refusing_fails_for_good_after_the_jobs_attempts(provider, clock, factories, runner):
    provider.answers = [RATE_LIMITED] * 10
    user = member(factories)
    with suppress(sms.SmsRateLimited):  # the eager runner raises a job that failed for good
        promote(user)
    db.session.expire_all()
    (row,) = sms_jobs()
    assert (row.status, row.attempts) == ("failed", row.max_attempts) and row.max_attempts == 5
    assert len(provider.requests) == 5
    (delivery,) = sms_deliveries(user)
    assert delivery.status == "failed" and "isv.BUSINESS_LIMIT_CONTROL" in delivery.last_error
    listed = runner.invoke(args=["jobs", "list", "--status", "failed"]).output
    assert SEND_JOB in listed and "isv.BUSINESS_LIMIT_CONTROL" in listed


def test_a_bad_number_fails_at_once_without_retry_and_is_recorded(provider, clock, factories, runner):
    provider.answers = [BAD_NUMBER]
    user = member(factories, phone="13900000000")
    with suppress(sms.SmsRejected):
        promote(user)
    assert len(provider.requests) == 1, "no retry can fix a number the provider refuses"
    db.session.expire_all()
    (delivery,) = sms_deliveries(user)
    assert delivery.status == "failed" and "isv.MOBILE_NUMBER_ILLEGAL" in delivery.last_error
    (row,) = sms_jobs()
    assert (row.status, row.attempts) == ("failed", 1)
    listed = runner.invoke(args=["jobs", "list", "--status", "failed"]).output
    assert SEND_JOB in listed and "isv.MOBILE_NUMBER_ILLEGAL" in listed
    from models import Notification

    assert db.session.scalar(select(Notification).where(Notification.user_id == user.id)) is not None, \
        "the notice is still in the inbox"


def test_an_unreachable_provider_is_an_error_worth_retrying(app):
    saved = {name: app.config.get(name) for name in [*CONFIG, "SMS_ENDPOINT"]}
    app.config.update(CONFIG, SMS_ENDPOINT="http://127.0.0.1:9", SMS_CONNECT_TIMEOUT_MS=500)
    try:
        backend = sms.AliyunSmsBackend(app)
        with pytest.raises(sms.SmsError) as refused:
            backend.send("13911112222", "SMS_100001", {"title": "x"})
        assert refused.value.retryable and refused.value.code == "network"
    finally:
        app.config.update(saved)
        app.config.pop("SMS_CONNECT_TIMEOUT_MS", None)


def test_templates_are_read_from_json_or_pairs():
    assert sms.parse_templates('{"event_promoted": "SMS_1"}') == {"event_promoted": "SMS_1"}
    assert sms.parse_templates("event_promoted=SMS_1, login=SMS_2") == {"event_promoted": "SMS_1", "login": "SMS_2"}
    assert sms.parse_templates("") == {}
    with pytest.raises(RuntimeError):
        sms.parse_templates("event_promoted")


# -- the rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hh, mm, expected", [
    (20, 59, (1, 20, 59)),  # still allowed: at once
    (21, 0, (2, 8, 0)),  # quiet from 21:00: the next morning at 08:00
    (7, 59, (1, 8, 0)),  # still quiet: this morning at 08:00
    (8, 0, (1, 8, 0)),  # allowed again: at once
])
def test_quiet_hours_defer_to_eight_in_the_morning_shanghai(hh, mm, expected):
    now = shanghai(2026, 6, 1, hh, mm)
    allowed = next_allowed_send(now)
    day, eh, em = expected
    assert allowed == shanghai(2026, 6, day, eh, em)
    assert allowed.tzinfo is not None and allowed.utcoffset() == timedelta(0), "UTC, like every stored time"


def test_a_notice_at_night_waits_until_eight_and_is_then_sent(provider, clock, factories, app):
    clock.now = shanghai(2030, 6, 3, 21, 30)
    user = member(factories)
    promote(user)
    assert provider.requests == [], "nothing is texted at night"
    (row,) = sms_jobs()
    assert row.status == "queued" and row.run_at == shanghai(2030, 6, 4, 8, 0)
    clock.now = shanghai(2030, 6, 4, 8, 0)
    app.extensions["jobs"].run_due(clock.now)
    assert provider.sent_to == ["13911112222"], "deferred, not dropped"
    db.session.rollback()  # end the read begun before the job ran (SQLite keeps its snapshot)
    assert sms_deliveries(user)[0].status == "sent"


def test_at_most_the_daily_number_of_notices_per_member(provider, clock, factories):
    user = member(factories)
    for n in range(3):
        promote(user, n=n)
    assert len(provider.requests) == 2, "SMS_NOTICES_PER_DAY is 2"
    db.session.expire_all()
    statuses = [(d.status, d.last_error) for d in sms_deliveries(user)]
    assert statuses == [("sent", None), ("sent", None), ("failed", "daily SMS limit reached")]
    other = member(factories, phone="13933334444")
    promote(other)
    assert provider.sent_to[-1] == "13933334444", "the cap is per member"
    clock.now += timedelta(days=1)  # a new Shanghai day
    promote(user, n=3)
    assert provider.sent_to[-1] == "13911112222"


# -- marketing: consent, opt-out wording, one-tap unsubscribe -----------------------------------

def test_marketing_is_texted_only_to_members_who_opted_in_with_an_unsubscribe_link(provider, clock, factories,
                                                                                   campaign_kind):
    quiet = member(factories, phone="13944445555")
    keen = member(factories, phone="13955556666", marketing_opt_in=True)
    for user in (quiet, keen):
        notify(user, campaign_kind, {"points": 200}, link="/c/ev")
    db.session.commit()
    assert provider.sent_to == ["13955556666"], "no consent, no marketing text"
    params = json.loads(provider.requests[0]["query"]["TemplateParam"])
    assert params["points"] == "200" and params["link"] == f"{SITE}/c/ev"
    assert params["unsubscribe"] == f"{SITE}/u/{unsubscribe_token(keen)}"


def test_a_marketing_text_ends_with_the_opt_out_wording(app):
    with app.app_context():
        text = sms.notice_text("event_promoted", {"title": "周末露营"}, f"{SITE}/events/7", f"{SITE}/u/abc")
    assert text.startswith("【车友圈】") and "周末露营" in text
    assert text.endswith(f"退订 {SITE}/u/abc 拒收请回复R")


def test_the_unsubscribe_link_turns_marketing_off_without_login(app, factories, csrf_on):
    user = member(factories, marketing_opt_in=True)
    client = app.test_client()
    path = f"/u/{unsubscribe_token(user)}"
    page = client.get(path)
    body = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and "139****2222" in body and "确认退订" in body
    db.session.expire_all()
    assert db.session.get(User, user.id).marketing_opt_in, "opening the link (a previewer may) changes nothing"

    assert client.post(path, data={}).status_code == 400, "CSRF applies"
    db.session.expire_all()
    assert db.session.get(User, user.id).marketing_opt_in

    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    done = client.post(path, data={"csrf_token": token})
    assert done.status_code == 200 and "已退订" in done.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).marketing_opt_in is False
    consent = db.session.scalar(select(Consent).where(Consent.user_id == user.id).order_by(Consent.id.desc()))
    assert (consent.source, consent.marketing_opt_in) == ("unsubscribe", False)
    again = client.get(path)
    assert "已退订" in again.get_data(as_text=True), "a second tap says it is done"


def test_a_tampered_unsubscribe_link_is_refused_with_a_clear_message(app, factories):
    user = member(factories, marketing_opt_in=True)
    token = unsubscribe_token(user)
    other = unsubscribe_token(member(factories, phone="13966667777"))
    forged = other.split(".")[0] + "." + token.split(".")[1]  # another member's id with this signature
    client = app.test_client()
    for bad in (forged, token[:-2], "nonsense"):
        for response in (client.get(f"/u/{bad}"), client.post(f"/u/{bad}")):
            assert response.status_code == 400
            assert "此退订链接无效" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).marketing_opt_in, "nothing changed"
    client.post("/lang", data={"lang": "en"})
    english = client.get(f"/u/{forged}")
    assert english.status_code == 400 and "This unsubscribe link is not valid" in english.get_data(as_text=True)
