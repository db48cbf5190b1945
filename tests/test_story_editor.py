"""The story editor for phones (issue #10): no "Markdown" jargon, a format bar, the script's own
upload (HX-Request) answered with HX-Redirect or the editor fragment, photos saved in the order
sent; and the check-in page's verdict for a synced check-in."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import func, select

from models import Story, db
from models.nonces import new_nonce
from services.storage import get_storage
from tests.test_stories import BODY, post

HX = {"HX-Request": "true"}


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


def solid_jpeg(colour, size=(64, 48)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=95)
    buffer.seek(0)
    return buffer


def centre_colour(data: bytes):
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel((image.width // 2, image.height // 2))


@pytest.mark.parametrize("lang, label, bar", [("zh_CN", "故事正文", "文字格式"), ("en", "Your story", "Text formatting")])
def test_the_editor_speaks_plainly_and_offers_a_format_bar(app, login_as, author, lang, label, bar):
    client = login_as(author)
    client.set_cookie("lang", lang)
    page = client.get("/stories/new").get_data(as_text=True)
    assert "markdown" not in page.lower(), "no jargon in any label or hint"
    assert f'<label for="body">{label}</label>' in page
    assert f'role="group" aria-label="{bar}"' in page
    names = re.findall(r'data-format="(\w+)" aria-label="([^"]+)"', page)
    assert [kind for kind, _name in names] == ["bold", "heading", "list", "quote", "link"]
    assert all(name.strip() for _kind, name in names), "every button has an accessible name"
    assert "js/story-editor.js" in page


def test_the_scripts_upload_is_told_where_to_go_and_the_flash_waits_there(login_as, author, communities):
    client = login_as(author)
    response = client.post("/stories/new", headers=HX, content_type="multipart/form-data", data={
        "community": communities["ev"].id, "title": "冬天续航实测", "body": BODY, "action": "publish",
        "nonce": new_nonce()})
    story = db.session.scalar(select(Story))
    assert response.status_code == 204, "not a 302 that the XMLHttpRequest would follow unseen"
    assert response.headers["HX-Redirect"] == f"/stories/{story.id}"
    assert story.status == "published"
    assert "故事已发布。" in client.get(f"/stories/{story.id}").get_data(as_text=True), "the flash is still to be seen"

    draft = client.post(f"/stories/{story.id}/edit", headers=HX, content_type="multipart/form-data", data={
        "community": communities["ev"].id, "title": "改过的标题", "body": BODY, "action": "publish"})
    assert draft.status_code == 204 and draft.headers["HX-Redirect"] == f"/stories/{story.id}"


def test_a_refusal_to_the_script_is_the_editor_fragment_with_what_was_typed(login_as, author, communities):
    client = login_as(author)
    nonce = new_nonce()
    response = client.post("/stories/new", headers=HX, content_type="multipart/form-data", data={
        "community": communities["ev"].id, "title": "", "body": "我的冬天续航记录，写了很多字。",
        "action": "publish", "nonce": nonce})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "<html" not in body, "only the fragment"
    assert 'id="story-editor"' in body
    assert "我的冬天续航记录，写了很多字。" in body and "标题" in body
    assert f'value="{nonce}"' in body, "the same one-time nonce: a retry cannot post twice"
    assert "HX-Request" in response.headers.get("Vary", "")
    preview = client.post("/stories/new", headers=HX, content_type="multipart/form-data", data={
        "community": communities["ev"].id, "title": "标题", "body": BODY + "\n\n## 小标题", "action": "preview",
        "nonce": nonce})
    assert preview.status_code == 200 and "<h3>小标题</h3>" in preview.get_data(as_text=True)
    assert "<html" not in preview.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0


def test_photos_are_kept_in_the_order_they_were_sent(app, login_as, author, communities):
    colours = [(220, 20, 20), (20, 200, 20), (20, 20, 220)]
    client = login_as(author)
    response = post(client, community_id=communities["ev"].id,
                    photos=[(solid_jpeg(c), f"{n}.jpg") for n, c in enumerate(colours)])
    assert response.status_code == 302
    story = db.session.scalar(select(Story))
    storage = get_storage(app)
    assert [p.position for p in story.photos] == [0, 1, 2]
    seen = [centre_colour(storage.read(p.full_key)) for p in story.photos]
    for got, wanted in zip(seen, colours):
        assert all(abs(a - b) < 30 for a, b in zip(got, wanted)), (seen, colours)


def test_ticks_to_remove_photos_are_kept_when_the_form_is_refused(login_as, author, communities):
    client = login_as(author)
    post(client, community_id=communities["ev"].id, photos=[(solid_jpeg((200, 0, 0)), "a.jpg"),
                                                            (solid_jpeg((0, 0, 200)), "b.jpg")])
    story = db.session.scalar(select(Story))
    first, second = story.photos
    refused = client.post(f"/stories/{story.id}/edit", content_type="multipart/form-data", data={
        "community": communities["ev"].id, "title": "", "body": BODY, "action": "publish",
        "remove_photos": [str(second.id)]})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert re.search(rf'value="{second.id}" data-existing-photo\s+checked', page)
    assert not re.search(rf'value="{first.id}" data-existing-photo\s+checked', page)


def test_a_check_in_the_server_made_says_check_in_successful(login_as, factories):
    from datetime import timedelta

    from models.events import SignupInput, signup
    from models.types import utcnow

    ev = factories.communities()["ev"]
    organizer = factories.user(role="organizer", community=ev)
    event = factories.event(community=ev, organizer=organizer, starts_at=utcnow() + timedelta(hours=3))
    registration = signup(event, factories.user(nickname="电车阿丽"), SignupInput())
    db.session.commit()
    client = login_as(organizer)
    page = client.get(f"/events/{event.id}/checkin").get_data(as_text=True)
    assert 'data-msg-queued="已记录，待同步"' in page and 'data-msg-ok="签到成功"' in page
    assert 'data-msg-synced-one="已同步 {n} 条"' in page
    done = client.post(f"/events/{event.id}/checkin", data={"code": registration.code}).get_data(as_text=True)
    assert "签到成功" in done and "电车阿丽" in done
