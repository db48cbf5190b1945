"""Chinese first, English selectable and remembered."""
from __future__ import annotations

from models import User, db


def test_chinese_is_the_default(client, communities):
    body = client.get("/").get_data(as_text=True)
    assert '<html lang="zh-CN">' in body
    assert "社区" in body and "登录" in body


def test_english_is_selectable_and_remembered_in_a_cookie(client, communities):
    response = client.post("/lang", data={"lang": "en", "next": "/communities"})
    assert response.status_code == 302 and response.headers["Location"] == "/communities"
    body = client.get("/communities").get_data(as_text=True)
    assert '<html lang="en">' in body
    assert "EV Owners" in body and "Log in" in body


def test_a_members_choice_is_saved_on_the_account(login_as, factories, communities):
    member = factories.user()
    client = login_as(member)
    client.post("/lang", data={"lang": "en"})
    assert db.session.get(User, member.id).locale == "en"
    other_device = login_as(member)
    assert '<html lang="en">' in other_device.get("/me").get_data(as_text=True)


def test_unknown_language_and_foreign_next_are_ignored(client, communities):
    response = client.post("/lang", data={"lang": "xx", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"
    assert '<html lang="zh-CN">' in client.get("/").get_data(as_text=True)


def test_times_are_shown_in_shanghai_time(app):
    from datetime import datetime, timezone

    from flask_babel import format_datetime

    with app.test_request_context("/"):
        assert "20:00" in format_datetime(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc), "HH:mm")


def test_every_ui_string_has_a_chinese_translation():
    """Extract the msgids from the code now and compare with the zh catalog: none missing or empty."""
    import os
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    method_map = [("**/.venv/**", "ignore"), ("**/node_modules/**", "ignore"), ("**/migrations/**", "ignore"),
                  ("**/tests/**", "ignore"), ("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "N_": None, "DomainError": None,
                "lazy_gettext": None}
    skipped = {".git", ".venv", "node_modules", "migrations", "tests", "__pycache__", ".pytest_cache", "instance"}

    def directory_filter(path: str) -> bool:
        # Babel's default skips every folder starting with "_", and so templates/_macros and _partials.
        return os.path.basename(path) not in skipped

    wanted = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(root), method_map, keywords=keywords,
                                                                        directory_filter=directory_filter):
        wanted.add(message[0] if isinstance(message, tuple) else message)
    with (root / "translations/zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string and
                  (m.string if isinstance(m.string, str) else m.string[0])}
    assert sorted(wanted - translated) == []


def test_errors_speak_the_chosen_language(client):
    client.set_cookie("lang", "en")
    response = client.post("/auth/signup", data={"login": "a@example.com", "nickname": "Tom", "password": "short"})
    body = response.get_data(as_text=True)
    assert "Use at least 8 characters." in body
    assert "You need to agree to the privacy policy" in body
    assert "Page not found" in client.get("/nowhere").get_data(as_text=True)
