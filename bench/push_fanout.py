"""Web Push fan-out: deliveries per second from `services.push.send_deliveries` to a local push
service (a separate process on 127.0.0.1, answering 201 at once or after a delay), with real
encryption (aes128gcm) and a VAPID signature per message.

    .venv/bin/python bench/push_fanout.py [--devices 2000] [--batch 1000] [--delays 0,50]

The database is a fresh SQLite file, migrated, with one member, device and notification per
delivery (a campaign's shape). Prints one line per delay; the numbers go to BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def receiver(port_queue, delay_ms: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a push service reuses connections too

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if delay_ms:
                time.sleep(delay_ms / 1000)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    port_queue.put(server.server_port)
    server.serve_forever()


def seed(app, count: int, endpoint: str) -> list[int]:
    from sqlalchemy import insert, select

    from models import Notification, User, db
    from models.push import Delivery, PushSubscription
    from models.types import utcnow
    from tests.push_service import Subscriber

    phone = Subscriber()
    now = utcnow()
    with app.app_context():
        db.session.execute(insert(User), [
            {"nickname": f"车友{n}", "email": f"bench{n}@example.com", "password_hash": "x",
             "consent_version": "bench", "consent_at": now, "created_at": now} for n in range(count)])
        users = list(db.session.scalars(select(User.id).order_by(User.id)))
        db.session.execute(insert(PushSubscription), [
            {"user_id": u, "endpoint": f"{endpoint}/push/{u}", "p256dh": phone.p256dh, "auth": phone.auth,
             "label": "Android · Chrome", "categories": ["events"], "created_at": now} for u in users])
        db.session.execute(insert(Notification), [
            {"user_id": u, "kind": "event_reminder", "params": {"time": "09:00", "title": "周末洗车聚会", "place": "世纪公园"},
             "link": "/events", "created_at": now} for u in users])
        subs = dict(db.session.execute(select(PushSubscription.user_id, PushSubscription.id)).all())
        notes = dict(db.session.execute(select(Notification.user_id, Notification.id)).all())
        db.session.execute(insert(Delivery), [
            {"notification_id": notes[u], "channel": "push", "subscription_id": subs[u], "status": "queued",
             "attempts": 0, "created_at": now} for u in users])
        db.session.commit()
        return list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))


def run(devices: int, batch: int, delay_ms: int, threads: int) -> tuple[float, dict]:
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app import create_app
    from models import db
    from models.push import Delivery
    from services.push import send_deliveries

    ports = multiprocessing.Queue()
    server = multiprocessing.Process(target=receiver, args=(ports, delay_ms), daemon=True)
    server.start()
    port = ports.get(timeout=10)
    tmp = Path(tempfile.mkdtemp(prefix="cheyou-push-bench-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite3'}", "JOBS_MODE": "thread",
                      "PUSH_ALLOW_PRIVATE_ENDPOINTS": True, "PUSH_THREADS": threads, "RATELIMIT_ENABLED": False},
                     instance_path=str(tmp / "instance"))
    app.extensions["jobs"].autostart = False
    try:
        with app.app_context():
            upgrade()
        ids = seed(app, devices, f"http://127.0.0.1:{port}")
        started = time.perf_counter()
        for at in range(0, len(ids), batch):
            with app.app_context():
                send_deliveries(ids[at:at + batch])
        elapsed = time.perf_counter() - started
        with app.app_context():
            statuses = dict(db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        return len(ids) / elapsed, statuses
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--delays", default="0,50", help="the push service's answer delay, ms, comma separated")
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    for delay in (int(d) for d in args.delays.split(",")):
        rate, statuses = run(args.devices, args.batch, delay, args.threads)
        print(f"delay {delay:>3} ms: {args.devices} deliveries, {rate:,.0f} deliveries/s, "
              f"{args.threads} threads, batches of {args.batch}; statuses {statuses}")


if __name__ == "__main__":
    main()
