"""The application shell: health, headers, error pages, configuration."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError

from app import create_app
from models import db


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_database_fails(client, monkeypatch):
    def broken(*_a, **_kw):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(db.session, "execute", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"


def test_security_headers_forbid_inline_code(client, communities):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    body = response.get_data(as_text=True)
    assert "<script>" not in body and " style=" not in body


def test_unknown_page_is_a_styled_chinese_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "页面不存在" in body
    assert 'class="tabbar"' in body


def test_server_error_shows_a_friendly_page_without_a_trace(tmp_path):
    # Eager jobs: a thread-mode app would start its outbox thread at this first request.
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x", "JOBS_MODE": "eager"},
                     instance_path=str(tmp_path))

    @app.get("/__boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/__boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "出错了" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_footer_shows_icp_number_from_configuration(client, app):
    app.config["ICP_NUMBER"] = "京ICP备12345678号"
    try:
        assert "京ICP备12345678号" in client.get("/offline").get_data(as_text=True)
    finally:
        app.config["ICP_NUMBER"] = "沪ICP备00000000号-1"


def test_secrets_are_generated_once_into_instance(tmp_path, monkeypatch):
    for name in ("SECRET_KEY", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    first = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, instance_path=str(tmp_path))
    second = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, instance_path=str(tmp_path))
    assert len(first.config["SECRET_KEY"]) >= 40
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["VAPID_PUBLIC_KEY"] == second.config["VAPID_PUBLIC_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "vapid_private.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


RACER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from app import _instance_secret
from services.push_keys import load_or_create_vapid
instance, go = Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
print(_instance_secret(instance, "secret_key", lambda: "k" * 200_000), load_or_create_vapid(instance / "vapid_private.pem")[1])
"""


def test_processes_starting_together_on_a_fresh_instance_all_get_the_same_secrets(tmp_path):
    """gunicorn's workers boot at the same moment: none may read a half-written key (one crashed
    on that) or keep a key of its own."""
    root = str(Path(__file__).resolve().parent.parent)
    for round_ in range(3):
        instance, go = tmp_path / f"instance-{round_}", tmp_path / f"go-{round_}"
        racers = [subprocess.Popen([sys.executable, "-c", RACER, root, str(instance), str(go)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        time.sleep(1.5)  # every racer imported and waiting
        go.touch()
        answers = [racer.communicate(timeout=60) for racer in racers]
        assert all(racer.returncode == 0 for racer in racers), [err[-500:] for _out, err in answers]
        assert len({out for out, _err in answers}) == 1
        assert sorted(p.name for p in instance.iterdir()) == ["secret_key", "vapid_private.pem"]  # no leftovers
        assert (instance / "vapid_private.pem").stat().st_mode & 0o077 == 0


def test_environment_overrides_generated_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, instance_path=str(tmp_path))
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(app):
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_text_is_sent_compressed_to_phones(client):
    raw = client.get("/static/vendor/htmx.min.js")
    compressed = client.get("/static/vendor/htmx.min.js", headers={"Accept-Encoding": "br, gzip"})
    assert compressed.headers["Content-Encoding"] == "br"
    assert len(compressed.get_data()) < len(raw.get_data()) / 2


def test_gunicorn_workers_take_the_loaded_app_out_of_the_garbage_collectors_walk():
    """gunicorn.conf.py (read from the working directory by production and `make bench`):
    after a worker loads the app its objects are frozen, so full collections no longer stall
    requests for ~100 ms (BENCHMARKS.md, 2026-12-07 night)."""
    import gc
    import importlib.util

    spec = importlib.util.spec_from_file_location("gunicorn_conf", Path(__file__).resolve().parent.parent / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    before = gc.get_freeze_count()
    try:
        conf.post_worker_init(worker=None)
        assert gc.get_freeze_count() > max(before, 10_000)
    finally:
        gc.unfreeze()
