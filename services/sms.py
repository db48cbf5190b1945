"""SMS delivery behind one interface: verification codes (`send_code`) and notices (`send_notice`).

Backends (`SMS_BACKEND`):
- `log` (development, tests): the text goes to the log, and to `sent`/`notices` for tests.
- `aliyun`: Alibaba Cloud SMS through its official SDK (`alibabacloud-dysmsapi20170525`).
  Every message is an approved template (`SMS_TEMPLATES`: a template code per code purpose and
  per notice kind) filled with parameters, under the approved sign name (`SMS_SIGN_NAME`).

Provider errors become `SmsError`s that say whether trying again later can help: a rate limit
or a provider hiccup is `retryable` (the outbox job retries with back-off); a number the
provider refuses is not (`SmsRejected`: the job records it and stops). The rules on *whether*
a notice goes by SMS at all (kinds, daily cap, marketing consent, quiet hours) are in
models/sms_rules.py; this module only sends.
"""
from __future__ import annotations

import json
import logging
from collections import deque

from flask import Flask, current_app

log = logging.getLogger("cheyou.sms")

SIGNATURE = "【车友圈】"
# Chinese carriers require marketing texts to say how to refuse them; Aliyun's wording.
OPT_OUT = "拒收请回复R"


class SmsError(Exception):
    """The provider did not take the message. RETRYABLE: the same message may go through later."""

    retryable = True

    def __init__(self, message: str, code: str | None = None):
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code


class SmsRateLimited(SmsError):
    """The provider's flow control (per number, per minute/hour/day): try again later."""


class SmsRejected(SmsError):
    """The provider refuses this message for good (a bad number, a number on its blacklist)."""

    retryable = False


def notice_text(kind: str, params: dict, link: str | None, unsubscribe_url: str | None = None) -> str:
    """The whole text of a notice as the member reads it (zh-CN: SMS go to mainland numbers)."""
    from flask_babel import force_locale

    from models.notifications import Notification

    with force_locale("zh_CN"):
        text = Notification(kind=kind, params=params or {}).text
    parts = [SIGNATURE + text]
    if link:
        parts.append(link)
    if unsubscribe_url:
        parts.append(f"退订 {unsubscribe_url} {OPT_OUT}")
    return " ".join(parts)


def template_params(params: dict, link: str | None, unsubscribe_url: str | None = None) -> dict:
    """The template variables of a notice: its notification parameters (as text), the link and,
    for marketing, the unsubscribe link. Translatable values ({"msgid": …}) go as zh-CN text."""
    from flask_babel import force_locale, gettext

    out = {}
    with force_locale("zh_CN"):
        for key, value in (params or {}).items():
            if isinstance(value, dict) and "msgid" in value:
                value = gettext(value["msgid"])
            out[key] = str(value)
    if link:
        out["link"] = link
    if unsubscribe_url:
        out["unsubscribe"] = unsubscribe_url
    return out


class SmsBackend:
    def send_code(self, phone: str, code: str, purpose: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def send_notice(self, phone: str, kind: str, params: dict, link: str | None = None,
                    unsubscribe_url: str | None = None) -> str | None:  # pragma: no cover - interface
        """Send a notice; returns the provider's message id (None when it has none)."""
        raise NotImplementedError


class LogSmsBackend(SmsBackend):
    """Development backend: the text appears in the server log, and in `sent`/`notices` for tests."""

    def __init__(self, app: Flask | None = None):
        # The latest only: a long-running process must not grow.
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=200)
        self.notices: deque[tuple[str, str, str]] = deque(maxlen=200)  # (phone, kind, text)

    def send_code(self, phone, code, purpose):
        self.sent.append((phone, code, purpose))
        log.warning("SMS to %s: 【车友圈】验证码 %s，5 分钟内有效。(purpose=%s)", phone, code, purpose)

    def send_notice(self, phone, kind, params, link=None, unsubscribe_url=None):
        text = notice_text(kind, params, link, unsubscribe_url)
        self.notices.append((phone, kind, text))
        log.warning("SMS to %s: %s", phone, text)
        return None


def parse_templates(value) -> dict[str, str]:
    """`SMS_TEMPLATES`: a JSON object or `kind=SMS_123,login=SMS_456`, to {kind or purpose: code}."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    value = (value or "").strip()
    if not value:
        return {}
    if value.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(value).items()}
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise RuntimeError("SMS_TEMPLATES: expected JSON or kind=TEMPLATE_CODE pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


# Aliyun answer codes (https://help.aliyun.com/document_detail/101346.html) that no retry can fix.
ALIYUN_REJECTED = {
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.DAY_LIMIT_CONTROL",  # the number's daily allowance (the provider's own cap): not before tomorrow
}
ALIYUN_RATE_LIMITED = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "Throttling.Api"}


class AliyunSmsBackend(SmsBackend):
    """Alibaba Cloud SMS (dysmsapi 2017-05-25, `SendSms`) through the official SDK.

    The SDK tries once (its own retries are off by default); the outbox job retries."""

    def __init__(self, app: Flask):
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        cfg = app.config
        missing = [name for name in ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "SMS_SIGN_NAME")
                   if not cfg.get(name)]
        if missing:
            raise RuntimeError(f"SMS_BACKEND=aliyun needs {', '.join(missing)}")
        self.sign_name = cfg["SMS_SIGN_NAME"]
        self.templates = parse_templates(cfg.get("SMS_TEMPLATES"))
        endpoint = cfg.get("SMS_ENDPOINT") or "dysmsapi.aliyuncs.com"
        protocol = "HTTPS"
        for scheme in ("http://", "https://"):  # `http://127.0.0.1:8080` for a local stand-in (tests)
            if endpoint.startswith(scheme):
                protocol, endpoint = scheme[:-3].upper(), endpoint[len(scheme):].rstrip("/")
        self.client = Client(Config(
            access_key_id=cfg["ALIYUN_ACCESS_KEY_ID"], access_key_secret=cfg["ALIYUN_ACCESS_KEY_SECRET"],
            endpoint=endpoint, protocol=protocol,
            connect_timeout=int(cfg.get("SMS_CONNECT_TIMEOUT_MS") or 5000),  # every send has a timeout
            read_timeout=int(cfg.get("SMS_READ_TIMEOUT_MS") or 10000),
        ))

    def template_for(self, name: str) -> str:
        code = self.templates.get(name)
        if not code:
            # A configuration mistake: retrying will not help until an operator adds the template.
            raise SmsRejected(f"no SMS template configured for {name!r} (SMS_TEMPLATES)", "config.NO_TEMPLATE")
        return code

    def send(self, phone: str, template: str, params: dict) -> str | None:
        from alibabacloud_dysmsapi20170525.models import SendSmsRequest
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

        request = SendSmsRequest(phone_numbers=phone, sign_name=self.sign_name, template_code=template,
                                 template_param=json.dumps(params, ensure_ascii=False))
        try:
            response = self.client.send_sms(request)
        except AlibabaCloudException as exc:  # an HTTP error answer (4xx/5xx)
            raise _aliyun_error(getattr(exc, "code", None), str(getattr(exc, "message", exc))) from exc
        except Exception as exc:  # the SDK wraps network failures (refused, timeout): try again later
            raise SmsError(f"SMS provider unreachable: {exc}", "network") from exc
        body = response.body
        if body is None or body.code != "OK":
            code = body.code if body is not None else None
            raise _aliyun_error(code, body.message if body is not None else "empty answer")
        return body.biz_id

    def send_code(self, phone, code, purpose):
        self.send(phone, self.template_for(purpose), {"code": code})

    def send_notice(self, phone, kind, params, link=None, unsubscribe_url=None):
        return self.send(phone, self.template_for(kind), template_params(params, link, unsubscribe_url))


def _aliyun_error(code: str | None, message: str) -> SmsError:
    if code in ALIYUN_RATE_LIMITED:
        return SmsRateLimited(message, code)
    if code in ALIYUN_REJECTED:
        return SmsRejected(message, code)
    return SmsError(message, code)


BACKENDS = {"log": LogSmsBackend, "aliyun": AliyunSmsBackend}


def get_backend(app: Flask) -> SmsBackend:
    backend = app.extensions.get("sms")
    if backend is None:
        name = app.config.get("SMS_BACKEND", "log")
        if name not in BACKENDS:
            raise RuntimeError(f"unknown SMS_BACKEND {name!r}; available: {', '.join(BACKENDS)}")
        backend = app.extensions["sms"] = BACKENDS[name](app)
    return backend


def send_notice(phone: str, kind: str, params: dict, link: str | None = None,
                unsubscribe_url: str | None = None) -> str | None:
    """Send one notice through the app's backend now; raises `SmsError`. The job
    `services.tasks.send_sms_notice` wraps it with the rules (models/sms_rules.py)."""
    return get_backend(current_app).send_notice(phone, kind, params, link, unsubscribe_url)
