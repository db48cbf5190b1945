"""Issue #13's measurement over HTTP: every page and write of a member, at full scale, at a tenth
of it and on the demo data, beside the floor app, on SQLite and (with BENCH_DATABASE_URL) PostgreSQL.

    make bench       # or: .venv/bin/python bench/http_bench.py [--factor 1.0] [--duration 10]
                     #        [--connections 16] [--markdown PATH] [--sizes demo,tenth,full] [--pages home,story]

For each database and size: a fresh database (SQLite: a new file; PostgreSQL: BENCH_DATABASE_URL,
emptied — DROP SCHEMA public CASCADE — and migrated, like TEST_DATABASE_URL in the tests), filled
by `seed-demo` or by bench/scale.py (at a tenth: the same shapes with ten times fewer rows, so
a story, search or event page is as full as at full scale and "full ÷ tenth" is the data's
growth alone, where "full ÷ demo" also counts a longer page); Cheyou under `gunicorn -w 2 "app:create_app()"` and the floor
app (bench/floor_app.py) under the same settings; then `wrk -t2 -c16 -d10s --latency` on each page
with the session cookie of a member of all four communities (the demo member, joined to all of
them, on the demo data), and on each write with a Lua script (bench/writes.py says who sends what).
The floor is measured before and after the pages, and each figure is divided by their mean.

Bytes are one plain GET's body as wrk gets it (uncompressed) and as a phone gets it (br); SQL
queries are counted in-process (the Flask test client on the same database, a
`before_cursor_execute` counter, the same member), as bench/run.py does.

Named http_bench.py, not http.py: a bench/http.py would shadow the standard library's `http`
for every script in bench/ (Python puts the script's folder first on sys.path).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import requests  # noqa: E402

import servers  # noqa: E402
import wrk  # noqa: E402
import writes  # noqa: E402

SECRET_KEY = "cheyou-bench-http"  # the servers' and the cookies' signer (a throwaway database's)
DEMO_VIEWER = "13800000001"  # the demo member: tickets, vouchers, points; joined to all four communities

# (key, label, path): the story's path and the next page's come from the database and the home page.
PAGES = [
    ("home", "`/`", "/"),
    ("home-hot", "`/?sort=hot`", "/?sort=hot"),
    ("ev", "`/c/ev`", "/c/ev"),
    ("ev-hot", "`/c/ev?sort=hot`", "/c/ev?sort=hot"),
    ("story", "story with the most comments", None),
    ("search", "`/stories/search?q=电池`", "/stories/search?q=" + quote("电池")),
    ("events", "`/events`", "/events"),
    ("rewards", "`/rewards`", "/rewards"),
    ("me", "`/me`", "/me"),
    ("points", "`/me/points`", "/me/points"),
    ("home-next", "`/` next page (htmx fragment)", None),
]
WRITE_LABELS = {"like": "like POST", "comment": "comment POST", "signup": "event signup POST",
                "redeem": "reward redemption POST"}


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    key: str
    label: str
    path: str = ""
    rps: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    bytes: int | None = None
    br_bytes: int | None = None
    queries: int | None = None
    requests: int = 0
    non_2xx: int = 0  # what wrk reports as "Non-2xx or 3xx responses" (statuses >= 400)
    socket_errors: int = 0  # connect, read, write, timeout
    rows_added: int | None = None  # writes: what the database gained during the run
    failure: str | None = None


@dataclass
class Table:
    database: str
    size: str
    described: str
    floor_rps: list[float] = field(default_factory=list)
    floor_p99_ms: list[float] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    load_before: tuple = ()
    load_after: tuple = ()

    @property
    def floor(self) -> float:
        return sum(self.floor_rps) / len(self.floor_rps) if self.floor_rps else 0.0


# --- the database ----------------------------------------------------------------------------

def build_app(url: str, instance: Path):
    """An in-process Cheyou on URL, emptied and migrated: it fills the database and counts queries."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from models import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET_KEY, "JOBS_MODE": "eager",
                      "RATELIMIT_ENABLED": False, "WTF_CSRF_ENABLED": False}, instance_path=str(instance))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            if "bench" not in (db.engine.url.database or ""):  # it is emptied: never a real database
                raise SystemExit(f"refusing to empty {db.engine.url.database!r}: BENCH_DATABASE_URL must name "
                                 "a database made for benchmarks (its name containing 'bench')")
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
    # Alembic's logging config (migrations/alembic.ini) lets the app's warnings through again:
    # the demo's SMS lines would drown the progress.
    logging.getLogger().setLevel(logging.ERROR)
    return app


SIZE_TITLES = {"demo": "demo data", "tenth": "a tenth of full scale", "full": "full scale"}
SCALE_SHARE = {"tenth": 0.1, "full": 1.0}  # of --factor, for the sizes bench/scale.py makes


def fill(app, size: str, factor: float, seed: int) -> dict:
    """Demo data or the scale generator's; returns the viewer's login and the story page's id."""
    from sqlalchemy import func, select

    from models import Community, User, db
    from models.engagement import Comment
    from models.stories import Story

    if size in SCALE_SHARE:
        import scale

        made = scale.generate(app, factor * SCALE_SHARE[size], seed, log=progress)
        return {"login": scale.VIEWER_LOGIN, "password": scale.VIEWER_PASSWORD, "story_id": made["big_story_id"],
                "sizes": made["sizes"]}
    from demo import DEMO_PASSWORD, seed as seed_demo

    with app.app_context():
        seed_demo()
        viewer = User.find_by_login(DEMO_VIEWER)
        for community in db.session.scalars(select(Community)):
            community.join(viewer)  # a member of all four, like the scale's viewer
        story_id = db.session.scalar(
            select(Comment.story_id).join(Story, Story.id == Comment.story_id)
            .where(Story.status == "published", Comment.status == "published")
            .group_by(Comment.story_id).order_by(func.count().desc(), Comment.story_id).limit(1))
        db.session.commit()
    return {"login": DEMO_VIEWER, "password": DEMO_PASSWORD, "story_id": story_id, "sizes": None}


def count_queries(app, login: str, password: str, paths: dict[str, tuple[str, dict]]) -> dict[str, int]:
    """SQL statements each page runs for the signed-in viewer, in-process (after one warm-up GET)."""
    from sqlalchemy import event

    from models import db

    counter = {"n": 0}

    def count(*_args):
        counter["n"] += 1

    client = app.test_client()
    client.post("/auth/login", data={"login": login, "password": password})
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        counts = {}
        for key, (path, headers) in paths.items():
            client.get(path, headers=headers)
            counter["n"] = 0
            client.get(path, headers=headers)
            counts[key] = counter["n"]
        return counts
    finally:
        event.remove(engine, "before_cursor_execute", count)


# --- over HTTP -------------------------------------------------------------------------------

def log_in(base: str, login: str, password: str) -> tuple[str, str, str]:
    """Log in through the form as a browser does; returns (Cookie header, CSRF token, the home page's HTML)."""
    with requests.Session() as http:
        http.headers["User-Agent"] = wrk.USER_AGENT
        form = http.get(f"{base}/auth/login", timeout=60).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        answer = http.post(f"{base}/auth/login", data={"login": login, "password": password, "csrf_token": token},
                           timeout=60)
        if answer.url.rstrip("/") != base:
            raise SystemExit(f"logging in as {login} failed: {answer.status_code} at {answer.url}")
        home = http.get(f"{base}/", timeout=120).text  # the cookie now carries today's activity marker
        csrf = re.search(r'"X-CSRFToken":\s*"([^"]+)"', home).group(1)
        return "; ".join(f"{c.name}={c.value}" for c in http.cookies), csrf, home


def more_url(html: str) -> str | None:
    """The hx-get URL of the feed's "more" element (class load-more)."""
    for tag in re.findall(r"<[^>]+>", html):
        if re.search(r'class="[^"]*\bload-more\b', tag) and (found := re.search(r'hx-get="([^"]+)"', tag)):
            return unescape(found.group(1))
    return None


def body_sizes(url: str, headers: dict) -> tuple[int, int, int]:
    """(status, bytes uncompressed, bytes with br) of one GET each."""
    plain = requests.get(url, headers={**headers, "Accept-Encoding": "identity", "User-Agent": wrk.USER_AGENT},
                         timeout=120, allow_redirects=False)
    packed = requests.get(url, headers={**headers, "Accept-Encoding": "br", "User-Agent": wrk.USER_AGENT},
                          timeout=120, allow_redirects=False, stream=True)
    sent = len(packed.raw.read(decode_content=False))
    return plain.status_code, len(plain.content), sent


def measure_page(row: Row, base: str, headers: dict, args) -> None:
    status, row.bytes, row.br_bytes = body_sizes(base + row.path, headers)  # also the warm-up
    if status != 200:
        row.failure = f"GET answered {status}"
        return
    requests.get(base + row.path, headers={**headers, "User-Agent": wrk.USER_AGENT}, timeout=120)
    take(row, wrk.run(base + row.path, args.duration, args.connections, headers))


def take(row: Row, done: wrk.Result) -> None:
    """Copy one wrk run's figures into ROW; mostly errors make it a failure, not a figure."""
    row.rps, row.p50_ms, row.p99_ms, row.requests = done.rps, done.p50_ms, done.p99_ms, done.requests
    row.non_2xx, row.socket_errors = done.non_2xx, done.socket_errors
    for refusal in done.refusals[:1]:
        progress(f"{row.label}: {refusal}")
    if done.mostly_errors:
        row.failure = f"{done.errors} of {done.requests} requests failed"


def measure_write(row: Row, kind: str, app, world, base: str, cookies: list, workdir: Path, args) -> None:
    """One checked request (status 200 and one more row), then wrk with a script of fresh requests."""
    senders = cookies[kind]
    check_cookie, check_token = senders[0]
    path, form = writes.request_for(kind, world.targets(kind)[0], secrets.token_urlsafe(18))
    before = writes.rows(app, kind, world)
    answer = requests.post(base + path, data=form, timeout=120, allow_redirects=False, headers={
        "Cookie": check_cookie, "X-CSRFToken": check_token, "HX-Request": "true", "User-Agent": wrk.USER_AGENT})
    row.path, row.bytes = path, len(answer.content)
    if answer.status_code != 200 or writes.rows(app, kind, world) != before + 1:
        row.failure = f"the check request answered {answer.status_code} and added {writes.rows(app, kind, world) - before} rows"
        progress(f"{kind}: {row.failure}: {answer.text[:500]}")
        return
    script = wrk.write_script(workdir / f"{kind}.lua", kind, senders[1:], world.targets(kind), each_once=kind == "signup",
                              comment=writes.COMMENT_PREFIX)
    before = writes.rows(app, kind, world)
    done = wrk.run(base + "/", args.duration, args.connections, script=script)
    row.rows_added = writes.rows(app, kind, world) - before
    take(row, done)


def measure(database: str, url: str, size: str, args, workdir: Path) -> Table:
    from benchdb import describe
    from models import db

    progress(f"{database}, {size}: building the database")
    app = build_app(url, workdir / "instance-builder")
    filled = fill(app, size, args.factor, args.seed)
    crowd = max(args.crowd, 100)
    world = writes.prepare(app, crowd, min(args.payers, crowd), args.seed)
    table = Table(database, size, describe(app))
    if filled["sizes"]:
        table.described += f", factor {args.factor * SCALE_SHARE[size]:g}: " + ", ".join(f"{k} {v:,}" for k, v in filled["sizes"].items())
    cookies = {"redeem": writes.signed_in(app, world.payers, wrk.USER_AGENT)}
    cookies["like"] = cookies["comment"] = cookies["signup"] = writes.signed_in(app, world.crowd, wrk.USER_AGENT)

    env = servers.app_env(url, SECRET_KEY, workdir / f"instance-{size}")
    started = [servers.Server.gunicorn("Cheyou", "app:create_app()", env, workdir / "cheyou.log", "/healthz"),
               servers.Server.gunicorn("the floor app", "bench.floor_app:app", env, workdir / "floor.log")]
    if env.get("REDIS_URL"):
        started.append(servers.Worker("the worker", [], env, workdir / "worker.log"))
    try:
        for server in started:
            server.start()
        cheyou, floor = started[0], started[1]
        progress(f"{database}, {size}: Cheyou on {cheyou.url}, the floor on {floor.url}")
        table.load_before = os.getloadavg()
        cookie, _token, home = log_in(cheyou.url, filled["login"], filled["password"])
        paths = dict((key, path) for key, _label, path in PAGES)
        paths["story"] = f"/stories/{filled['story_id']}"
        paths["home-next"] = more_url(home)
        chosen = [(k, label) for k, label, _ in PAGES if k in args.pages]
        headers = {key: {"Cookie": cookie, **({"HX-Request": "true"} if key == "home-next" else {})} for key, _ in chosen}

        def floor_run():
            done = wrk.run(floor.url + "/", args.duration, args.connections)
            if done.mostly_errors or done.rps <= 0:
                raise SystemExit(f"the floor app failed: {done.output}")
            table.floor_rps.append(done.rps)
            table.floor_p99_ms.append(done.p99_ms)
            progress(f"floor: {done.rps:.0f} req/s, p99 {done.p99_ms:.1f} ms")

        requests.get(floor.url + "/", timeout=60)
        floor_run()
        for key, label in chosen:
            row = Row(key, label, paths[key] or "")
            table.rows.append(row)
            if not row.path:
                row.failure = "no such page here (no next page on the first one?)"
                continue
            measure_page(row, cheyou.url, headers[key], args)
            progress(f"{row.label}: {row.rps:.1f} req/s, p99 {row.p99_ms:.0f} ms" + (f" — {row.failure}" if row.failure else ""))
        for kind in args.writes:
            row = Row(kind, WRITE_LABELS[kind])
            table.rows.append(row)
            measure_write(row, kind, app, world, cheyou.url, cookies, workdir, args)
            progress(f"{row.label}: {row.rps:.1f} req/s, {row.rows_added} rows added" + (f" — {row.failure}" if row.failure else ""))
        floor_run()
        table.load_after = os.getloadavg()
        counted = count_queries(app, filled["login"], filled["password"],
                                {r.key: (r.path, {"HX-Request": "true"} if r.key == "home-next" else {})
                                 for r in table.rows if r.key not in writes.WRITES and r.path and not r.failure})
        for row in table.rows:
            row.queries = counted.get(row.key)
    finally:
        for server in started:
            server.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return table


# --- the table -------------------------------------------------------------------------------

def _n(value, digits=0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _rps(value: float) -> str:
    return _n(value, 1 if value < 100 else 0)


def markdown(table: Table, smaller: list[Table], args) -> str:
    """TABLE's rows; at full scale each page's req/s also as a ratio to the same page's on each
    of the SMALLER databases measured before it (demo data, a tenth of the scale): as measured,
    and as a ratio of the two "× floor" figures, which takes out the machine's own drift between
    the two measurements (on these shared machines the floor itself moves by a third)."""
    loads = lambda load: " / ".join(f"{x:.2f}" for x in load) if load else "—"  # noqa: E731
    lines = [f"### {table.database}, {SIZE_TITLES[table.size]}",
             "",
             f"{table.described}; gunicorn -w {servers.WORKERS}; wrk -t{wrk.THREADS} -c{args.connections} "
             f"-d{args.duration:g}s --latency; load average (1/5/15 min) before {loads(table.load_before)}, "
             f"after {loads(table.load_after)}.",
             f"Floor (bench/floor_app.py, 20 cards, one query): {' and '.join(_rps(r) for r in table.floor_rps)} req/s "
             f"(before and after the pages), p99 {' and '.join(_n(p, 1) for p in table.floor_p99_ms)} ms.",
             ""]
    header = "| page | req/s | × floor | p50 ms | p99 ms | bytes | br bytes | queries |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    for other in smaller:
        header, rule = header + f" full ÷ {other.size} | same, × floor |", rule + "---:|---:|"
    lines += [header, rule]
    smaller_rps = [({r.key: r.rps for r in other.rows if not r.failure}, other.floor) for other in smaller]
    for row in table.rows:
        ratio = row.rps / table.floor if table.floor and not row.failure else None
        cells = [row.label + (f" **failed: {row.failure}**" if row.failure else ""), _rps(row.rps), _n(ratio, 3),
                 _n(row.p50_ms, 1), _n(row.p99_ms, 0), _n(row.bytes), _n(row.br_bytes), _n(row.queries)]
        for rps, floor in smaller_rps:
            known = rps.get(row.key) and not row.failure
            cells.append(_n(row.rps / rps[row.key], 2) if known else "—")
            cells.append(_n((row.rps / table.floor) / (rps[row.key] / floor), 2) if known and floor and table.floor else "—")
        lines.append("| " + " | ".join(cells) + " |")
    # Writes: rows added may pass the requests wrk counted by those still in flight when it stopped.
    notes = [f"{r.label}: {r.requests:,} requests, {r.rows_added:,} rows added, {r.non_2xx:,} non-2xx, "
             f"{r.socket_errors:,} socket errors" for r in table.rows if r.rows_added is not None]
    notes += [f"{r.label}: {r.non_2xx:,} non-2xx and {r.socket_errors:,} socket errors in {r.requests:,} requests"
              for r in table.rows if (r.non_2xx or r.socket_errors) and r.rows_added is None]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=1.0, help="full scale's size (1.0: issue #13's)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per page")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sizes", default="demo,tenth,full",
                        help="demo (seed-demo), tenth (the scale generator at a tenth: pages as full as at full "
                             "scale, ten times fewer rows), full; in that order")
    parser.add_argument("--pages", default=",".join(k for k, _, _ in PAGES), help="keys: " + ", ".join(k for k, _, _ in PAGES))
    parser.add_argument("--writes", default=",".join(writes.WRITES), help="keys: " + ", ".join(writes.WRITES))
    parser.add_argument("--crowd", type=int, default=0, help="members sending writes (default 400 a second of --duration)")
    parser.add_argument("--payers", type=int, default=200, help="crowd members given points to redeem")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="sqlite, postgresql (the latter only with BENCH_DATABASE_URL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the tables there, as Markdown")
    parser.add_argument("--json", type=Path, help="also write the figures there, as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs (their folder is printed)")
    args = parser.parse_args(argv)
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.pages = [p for p in args.pages.split(",") if p]
    args.writes = [w for w in args.writes.split(",") if w]
    args.crowd = args.crowd or int(args.duration * 400) + 100
    unknown = set(args.sizes) - set(SIZE_TITLES) | set(args.pages) - {k for k, _, _ in PAGES} | set(args.writes) - set(writes.WRITES)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    args.sizes = [s for s in SIZE_TITLES if s in args.sizes]  # the smaller first: full scale compares to them
    if not wrk.available():
        raise SystemExit("wrk is not installed: bin/system-deps --bench (Debian's wrk)")
    logging.basicConfig(level=logging.ERROR)  # before create_app's: the app's INFO lines would drown the progress

    from app import _normalise_db_url

    wanted = set(args.databases.split(","))
    databases = [("SQLite", None)] if "sqlite" in wanted else []
    if os.environ.get("BENCH_DATABASE_URL") and "postgresql" in wanted:
        databases.append(("PostgreSQL", _normalise_db_url(os.environ["BENCH_DATABASE_URL"])))
    load_start = os.getloadavg()
    tables, out = [], []
    work = Path(tempfile.mkdtemp(prefix="cheyou-http-bench-"))
    try:
        for database, url in databases:
            smaller = []
            for size in args.sizes:
                workdir = work / f"{database.lower()}-{size}"
                workdir.mkdir()
                table = measure(database, url or f"sqlite:///{workdir / 'bench.sqlite3'}", size, args, workdir)
                tables.append(table)
                text = markdown(table, smaller if size == "full" else [], args)
                out.append(text)
                print(text, flush=True)
                smaller.append(table)
                if not args.keep and url is None:
                    (workdir / "bench.sqlite3").unlink(missing_ok=True)
    finally:
        if args.keep:
            progress(f"databases and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = (f"Machine: {os.cpu_count()} cores; load average (1/5/15 min) at the start "
               f"{' / '.join(f'{x:.2f}' for x in load_start)}, at the end {' / '.join(f'{x:.2f}' for x in os.getloadavg())}.\n")
    print(summary)
    if args.markdown:
        args.markdown.write_text(f"Command: `{' '.join(['bench/http_bench.py', *(argv if argv is not None else sys.argv[1:])])}`, "
                                 f"{time.strftime('%Y-%m-%d %H:%M')}\n\n" + "\n".join(out) + "\n" + summary)
    if args.json:
        args.json.write_text(json.dumps([asdict(t) | {"floor": t.floor} for t in tables], ensure_ascii=False, indent=1))
    failed = [f"{t.database} {t.size} {r.label}: {r.failure}" for t in tables for r in t.rows if r.failure]
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
