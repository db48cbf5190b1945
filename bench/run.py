"""Page benchmarks: time per page as a ratio to /healthz measured in the same run, SQL
queries per page, and the bytes a phone downloads (brotli, as served).

    make bench            # or: .venv/bin/python bench/run.py [--rounds N]

Runs in-process against a fresh SQLite database filled by seed-demo, so the numbers compare
pages with each other and with the baseline, not machines with machines.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event  # noqa: E402

from app import create_app  # noqa: E402
from models import db  # noqa: E402

# (path, viewer): the demo admin, the demo member (who holds vouchers and tickets) or a visitor
PAGES = [("/", "admin"), ("/communities", "admin"), ("/c/ev", "admin"), ("/me", "admin"),
         ("/me/notifications", "admin"), ("/me/points", "admin"), ("/rewards", "admin"), ("/me/vouchers", "admin"),
         ("/admin", "admin"), ("/events", "member"), ("/events/1", "member"), ("/me/tickets", "member"),
         ("/events/manage", "admin"), ("/events/4/roster", "admin"), ("/events/4/checkin", "admin"),
         ("/", "visitor"), ("/rewards", "visitor"), ("/events", "visitor"), ("/auth/signup", "visitor")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cheyou-bench-"))
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite3'}", "JOBS_MODE": "eager",
         "RATELIMIT_ENABLED": False, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False},
        instance_path=str(tmp),
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        from demo import DEMO_ACCOUNTS, DEMO_PASSWORD, seed

        seed()
        admin_login = DEMO_ACCOUNTS[-1][0]

    queries = {"n": 0}
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda *a: queries.__setitem__("n", queries["n"] + 1))

    member = app.test_client()
    member.post("/auth/login", data={"login": admin_login, "password": DEMO_PASSWORD})
    member_login = DEMO_ACCOUNTS[0][0]  # the demo member holds vouchers and tickets
    owner = app.test_client()
    owner.post("/auth/login", data={"login": member_login, "password": DEMO_PASSWORD})
    visitor = app.test_client()
    viewers = {"admin": member, "member": owner, "visitor": visitor}
    headers = {"Accept-Encoding": "br"}

    def measure(path: str, client=member) -> tuple[float, int, int, int, bytes]:
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append(time.perf_counter() - start)
        queries["n"] = 0
        response = client.get(path, headers=headers)
        n_queries = queries["n"]
        raw = client.get(path).get_data()
        return statistics.median(times), n_queries, len(raw), len(response.get_data()), raw

    base_time, *_ = measure("/healthz")
    print(f"baseline /healthz median: {base_time * 1000:.2f} ms over {args.rounds} rounds\n")
    print("| page | viewer | time ÷ /healthz | SQL queries | HTML bytes | sent (br) |")
    print("|---|---|---:|---:|---:|---:|")
    home_raw = b""
    for path, viewer in PAGES:
        median, n_queries, raw_len, sent_len, raw = measure(path, viewers[viewer])
        if path == "/" and viewer == "admin":
            home_raw = raw
        print(f"| `{path}` | {viewer} | {median / base_time:.1f}× | {n_queries} | {raw_len:,} | {sent_len:,} |")

    # Everything a first visit to the home page downloads, as a phone on a weak network sees it.
    assets = sorted({a.decode() for a in re.findall(rb'(?:src|href)="(/static/[^"#]+)', home_raw)})
    total_raw = len(home_raw)
    total_sent = len(member.get("/", headers=headers).get_data())
    for url in assets:
        total_sent += len(member.get(url, headers=headers).get_data())
        total_raw += len(member.get(url).get_data())
    print(f"\nfirst visit to `/` (signed in): {len(assets)} static files; "
          f"{total_raw:,} bytes raw, {total_sent:,} bytes sent (br)")

    # A voucher PDF: WeasyPrint renders it on the first download, the cache serves the rest.
    with app.app_context():
        from models import User, Voucher

        code = Voucher.of_member(User.find_by_login(member_login))[0].code
    owner.get(f"/me/vouchers/{code}.pdf")  # warm up: WeasyPrint's import and fonts, once per process
    with app.app_context():
        from services.storage import get_storage

        import shutil

        shutil.rmtree(get_storage(app).root, ignore_errors=True)
    start = time.perf_counter()
    first = owner.get(f"/me/vouchers/{code}.pdf")
    first_ms = (time.perf_counter() - start) * 1000
    cached = []
    for _ in range(20):
        start = time.perf_counter()
        owner.get(f"/me/vouchers/{code}.pdf")
        cached.append((time.perf_counter() - start) * 1000)
    print(f"voucher PDF download: first (rendered) {first_ms:.0f} ms = {first_ms / (base_time * 1000):.0f}× /healthz; "
          f"cached median {statistics.median(cached):.1f} ms = {statistics.median(cached) / (base_time * 1000):.0f}×; "
          f"{len(first.get_data()):,} bytes")


if __name__ == "__main__":
    main()
