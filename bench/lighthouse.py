"""Lighthouse 12 (mobile: a Moto G-class phone on a slow 4G line, simulated) on the main
member-facing pages, logged out and logged in, against the app served by gunicorn with the
demo data. Prints performance and accessibility scores, the key timings and the bytes a
first visit downloads (photos aside).

    make lighthouse        # or: .venv/bin/python bench/lighthouse.py [--only /events]

Lighthouse comes from npm through npx (cached in ~/.npm; not a dependency of the app) and
drives Debian's Chromium (/usr/bin/chromium). Scores move a little between runs on a busy
machine: run it on a quiet one and read the worst of the pages.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = "lighthouse@12.8.2"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run"
MEMBER = "13800000001"  # the demo member: communities, tickets, vouchers, an inbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(instance: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CHEYOU_INSTANCE": str(instance), "DATABASE_URL": f"sqlite:///{instance / 'lh.sqlite3'}",
           "RATELIMIT_ENABLED": "0", "JOBS_MODE": "thread"}
    env.pop("REDIS_URL", None)
    flask = [str(ROOT / ".venv/bin/flask"), "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "seed-demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "app:create_app()"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return server
        except requests.RequestException:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the app did not start")


def session_cookie(base: str) -> str:
    from demo import DEMO_PASSWORD

    with requests.Session() as http:
        page = http.get(f"{base}/auth/login").text
        token = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        http.post(f"{base}/auth/login", data={"login": MEMBER, "password": DEMO_PASSWORD, "csrf_token": token})
        return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def ids(base: str, cookie: str) -> dict:
    """A story, an event and a community of the demo, read from the pages themselves."""
    import re

    home = requests.get(f"{base}/c/ev").text
    events = requests.get(f"{base}/events").text
    return {"story": re.search(r'href="/stories/(\d+)"', home).group(1),
            "event": re.search(r'href="/events/(\d+)"', events).group(1)}


def lighthouse(url: str, cookie: str | None, out: Path) -> dict:
    command = ["npx", "--yes", LIGHTHOUSE, url, "--quiet", "--output=json", f"--output-path={out}",
               "--only-categories=performance,accessibility", f"--chrome-flags={CHROME_FLAGS}"]
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    subprocess.run(command, check=True, env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    report = json.loads(out.read_text())
    audits = report["audits"]
    requests_ = audits["network-requests"]["details"]["items"]
    first_visit = sum(r.get("transferSize", 0) for r in requests_ if r.get("resourceType") != "Image")
    return {
        "performance": round(report["categories"]["performance"]["score"] * 100),
        "accessibility": round(report["categories"]["accessibility"]["score"] * 100),
        "fcp": audits["first-contentful-paint"]["numericValue"],
        "lcp": audits["largest-contentful-paint"]["numericValue"],
        "tbt": audits["total-blocking-time"]["numericValue"],
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "kb": first_visit / 1024,
        "failed": [a for a, v in audits.items() if v.get("score") is not None and v["score"] < 1
                   and v.get("scoreDisplayMode") == "binary"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="a single path to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="cheyou-lh-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(tmp, port)
    try:
        cookie = session_cookie(base)
        found = ids(base, cookie)
        pages = ["/", "/c/ev", f"/stories/{found['story']}", "/events", f"/events/{found['event']}", "/rewards"]
        member_pages = pages + ["/me", "/me/tickets", "/me/notifications"]
        runs = [(p, None) for p in pages] + [(p, cookie) for p in member_pages]
        if args.only:
            runs = [(p, c) for p, c in runs if p == args.only]
        print(f"Lighthouse {LIGHTHOUSE.split('@')[1]}, mobile, simulated slow 4G; gunicorn -w 2, SQLite, demo data")
        print(f"{'page':<14} {'who':<8} {'perf':>4} {'a11y':>4} {'FCP ms':>7} {'LCP ms':>7} {'TBT ms':>6} {'CLS':>5} {'KB':>6}  below 100")
        for path, who in runs:
            result = lighthouse(base + path, who, tmp / "report.json")
            print(f"{path:<14} {'member' if who else 'visitor':<8} {result['performance']:>4} {result['accessibility']:>4} "
                  f"{result['fcp']:>7.0f} {result['lcp']:>7.0f} {result['tbt']:>6.0f} {result['cls']:>5.3f} "
                  f"{result['kb']:>6.1f}  {', '.join(result['failed'])}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
