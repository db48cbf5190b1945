"""Cheyou (车友圈): configuration and the application factory (the extensions are in extensions.py)."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, g, request

import commands
from blueprints import i18n
from blueprints.registry import register_blueprints
from blueprints.transactions import is_reads_first
from blueprints.web import init_web
from extensions import babel, compress, csrf, htmx, limiter, login_manager, migrate
from models import db, sqlite_tuning  # noqa: F401  (sqlite_tuning: the engine's event hooks)
from services import jobs
from services.instance_secrets import read_or_create
from services.push_keys import load_or_create_vapid

BASE_DIR = Path(__file__).resolve().parent


def _instance_secret(instance: Path, name: str, make) -> str:
    """Read a secret from instance/NAME, creating it once on first run (never committed)."""
    return read_or_create(instance / name, lambda: make().encode()).decode().strip()


def _vapid_keys(instance: Path) -> tuple[str, str]:
    """VAPID key pair for Web Push: the private key as PEM, the public key as base64url."""
    return load_or_create_vapid(instance / "vapid_private.pem")


class Config:
    """Settings read from the environment; see README's configuration table."""

    def __init__(self, instance: Path):
        env = os.environ.get
        self.SECRET_KEY = env("SECRET_KEY") or _instance_secret(
            instance, "secret_key", lambda: secrets.token_urlsafe(48)
        )
        self.SQLALCHEMY_DATABASE_URI = _normalise_db_url(
            env("DATABASE_URL") or f"sqlite:///{instance / 'cheyou.sqlite3'}"
        )
        self.REDIS_URL = env("REDIS_URL") or None
        self.VAPID_PRIVATE_KEY = env("VAPID_PRIVATE_KEY")
        self.VAPID_PUBLIC_KEY = env("VAPID_PUBLIC_KEY")
        if not (self.VAPID_PRIVATE_KEY and self.VAPID_PUBLIC_KEY):
            self.VAPID_PRIVATE_KEY, self.VAPID_PUBLIC_KEY = _vapid_keys(instance)
        self.VAPID_SUBJECT = env("VAPID_SUBJECT", "mailto:ops@cheyou.example")
        # Web Push sending (services/push.py): seconds per send, parallel sends, attempts before
        # a delivery fails. Private/loopback/http endpoints only for a local receiver (tests, bench).
        self.PUSH_TIMEOUT = float(env("PUSH_TIMEOUT") or 10)
        self.PUSH_THREADS = int(env("PUSH_THREADS") or 32)
        self.PUSH_MAX_ATTEMPTS = int(env("PUSH_MAX_ATTEMPTS") or 5)
        self.PUSH_ALLOW_PRIVATE_ENDPOINTS = env("PUSH_ALLOW_PRIVATE_ENDPOINTS", "0") == "1"
        self.PUSH_PROXY = env("PUSH_PROXY") or None  # e.g. http://proxy:3128 where push services are only reached through one
        self.CAMPAIGN_BATCH = int(env("CAMPAIGN_BATCH") or 500)  # members per fan-out job (services/campaigns.py)
        self.ICP_NUMBER = env("ICP_NUMBER", "沪ICP备00000000号-1")
        self.SMS_BACKEND = env("SMS_BACKEND", "log")
        # Site-wide SMS codes per Asia/Shanghai day; past it codes are refused and an alert is logged.
        self.SMS_DAILY_BUDGET = int(env("SMS_DAILY_BUDGET") or 1000)
        # SMS_BACKEND=aliyun: Alibaba Cloud SMS (services/sms.py); templates per code purpose / notice kind.
        self.ALIYUN_ACCESS_KEY_ID = env("ALIYUN_ACCESS_KEY_ID") or None
        self.ALIYUN_ACCESS_KEY_SECRET = env("ALIYUN_ACCESS_KEY_SECRET") or None
        self.SMS_SIGN_NAME = env("SMS_SIGN_NAME") or None
        self.SMS_TEMPLATES = env("SMS_TEMPLATES") or ""
        self.SMS_ENDPOINT = env("SMS_ENDPOINT") or None
        self.SMS_NOTICES_PER_DAY = int(env("SMS_NOTICES_PER_DAY") or 2)  # notices (not codes) per member
        # E-mail (password reset links): `log` writes them to the log; `smtp` sends (services/mail.py).
        self.MAIL_BACKEND = env("MAIL_BACKEND", "log")
        self.MAIL_FROM = env("MAIL_FROM", "车友圈 <no-reply@cheyou.example>")
        self.SMTP_HOST = env("SMTP_HOST", "localhost")
        self.SMTP_PORT = int(env("SMTP_PORT") or 587)
        self.SMTP_USER = env("SMTP_USER") or None
        self.SMTP_PASSWORD = env("SMTP_PASSWORD") or ""
        self.SMTP_STARTTLS = env("SMTP_STARTTLS", "1") != "0"
        # The site's public address for links in e-mails (never the request's Host header, which a
        # stranger can forge to make a reset link point elsewhere); unset, the request's is used.
        self.SITE_URL = (env("SITE_URL") or "").rstrip("/") or None
        self.FILES_ROOT = env("FILES_ROOT") or None  # generated files (voucher PDFs); default instance/uploads
        self.JOBS_MODE = env("JOBS_MODE") or ("rq" if self.REDIS_URL else "thread")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_ENABLED = env("RATELIMIT_ENABLED", "1") != "0"
        self.RATELIMIT_HEADERS_ENABLED = True
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = env("SESSION_COOKIE_SECURE", "0") == "1"
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 30
        self.WTF_CSRF_TIME_LIMIT = 60 * 60 * 8
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        # How long a SQLite request waits for the write lock before it gives up with a 503.
        self.SQLITE_BUSY_TIMEOUT = float(env("SQLITE_BUSY_TIMEOUT", "15"))
        self.BABEL_DEFAULT_LOCALE = "zh_CN"
        self.BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
        self.BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
        self.PRIVACY_POLICY_VERSION = "2026-11"
        self.MAX_CONTENT_LENGTH = 100 * 1024 * 1024
        # Phones on weak networks: brotli or gzip for text, never for already-compressed images.
        self.COMPRESS_ALGORITHM = ["br", "gzip"]
        self.COMPRESS_ALGORITHM_STREAMING = ["br"]
        self.COMPRESS_MIMETYPES = [
            "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
            "application/manifest+json", "image/svg+xml", "text/csv", "text/calendar",
        ]


def _normalise_db_url(url: str) -> str:
    """Let `postgresql://` URLs use psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_app(test_config: dict | None = None, instance_path: str | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, CLI."""
    app = Flask(__name__, instance_path=instance_path or os.environ.get("CHEYOU_INSTANCE") or str(BASE_DIR / "instance"))
    app.config.from_object(Config(Path(app.instance_path)))
    if test_config:
        app.config.update(test_config)
        app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # pysqlite's timeout is SQLite's busy handler: it retries the lock until then.
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        options["connect_args"] = {**options.get("connect_args", {}), "timeout": app.config["SQLITE_BUSY_TIMEOUT"]}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), compare_type=True)
    compress.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=lambda: "Asia/Shanghai")
    i18n.install_template_gettext(app)

    jobs.init_app(app)

    init_web(app)
    register_blueprints(app)

    commands.register(app)

    @app.before_request
    def _mark_write_intent():
        # SQLite takes the write lock at BEGIN for state-changing requests, so two
        # racing requests queue instead of failing to upgrade a read lock. A `@reads_first`
        # view does its slow reading before it asks for the lock (blueprints/transactions.py).
        writes = request.method not in ("GET", "HEAD", "OPTIONS")
        g.write_request = writes and not is_reads_first(app.view_functions.get(request.endpoint))
        db.write_intent.set(g.write_request)

    return app
