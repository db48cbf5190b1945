"""Issue #10, the rewards catalogue: an administrator uploads a picture on the reward form; it is
re-encoded like a story photo (resized, EXIF and GPS gone), shown on the card and the reward page,
public while the reward is active; a reward without one shows a drawing of its kind."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from models import Reward, db
from services.storage import get_storage
from tests.test_images import GPS_IFD, camera_exif, encode

PUBLIC = "public, max-age=31536000, immutable"
PRIVATE = "private, no-store"


@pytest.fixture
def admin(factories):
    return factories.user(login="boss@example.com", nickname="站长", role="admin")


@pytest.fixture(autouse=True)
def _no_reward_files(app):
    """The storage outlives each test's database: start without reward pictures."""
    storage = get_storage(app)
    for key in storage.keys("photos/rewards"):
        storage.delete(key)


def form_data(partner, **kw) -> dict:
    data = {"partner": partner.id, "kind": "wash", "title": "精洗一次", "title_en": "", "description": "内外精洗",
            "terms": "", "points_price": "300", "stock": "20", "per_member_limit": "2", "monthly_limit": "",
            "min_level": "1", "validity_days": "30", "community": "0", "active": "y"}
    data.update(kw)
    return data


def camera_photo() -> bytes:
    """A 2000 × 1500 phone photo with the make, model and GPS position in its EXIF (smooth, so
    the upload stays small enough for werkzeug to keep it in memory)."""
    ramp = Image.linear_gradient("L").resize((2000, 1500))
    picture = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90).resize((2000, 1500)), ramp))
    return encode(picture, "JPEG", exif=camera_exif(orientation=1), quality=80)


def upload(data: bytes, name: str = "IMG_2024.jpg"):
    return (io.BytesIO(data), name)


def photo_files(app) -> list[str]:
    return sorted(get_storage(app).keys("photos/rewards"))


def test_the_uploaded_picture_is_re_encoded_without_exif_and_shown(app, login_as, client, admin, factories):
    partner = factories.partner("洁亮洗车")
    original = camera_photo()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD), "the upload carries a GPS position"
    response = login_as(admin).post("/admin/rewards/new", data=form_data(partner, picture=upload(original)),
                                    content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    reward = db.session.scalar(select(Reward))
    assert reward.picture_key.startswith("photos/rewards/") and reward.picture_thumb_key.endswith("_t.jpg")
    assert photo_files(app) == sorted([reward.picture_key, reward.picture_thumb_key])

    for key, size in ((reward.picture_key, (1280, 960)), (reward.picture_thumb_key, (400, 400))):
        served = client.get(f"/media/{key}")
        assert served.status_code == 200 and served.headers["Cache-Control"] == PUBLIC
        data = served.get_data()
        picture = Image.open(io.BytesIO(data))
        assert picture.format == "JPEG" and picture.size == size
        assert len(picture.getexif()) == 0 and b"Exif\x00\x00" not in data and b"Xiaomi" not in data

    catalogue = client.get("/rewards").get_data(as_text=True)
    assert f'src="/media/{reward.picture_thumb_key}"' in catalogue
    page = client.get(f"/rewards/{reward.id}").get_data(as_text=True)
    assert f'src="/media/{reward.picture_key}"' in page


def test_a_reward_without_a_picture_shows_a_drawing_of_its_kind(client, factories):
    partner = factories.partner("洁亮洗车")
    reward = Reward(partner_id=partner.id, kind="inspection", title="电池检测", points_price=100, stock=3)
    db.session.add(reward)
    db.session.commit()
    assert "/static/img/rewards/inspection.svg" in client.get("/rewards").get_data(as_text=True)
    assert "/static/img/rewards/inspection.svg" in client.get(f"/rewards/{reward.id}").get_data(as_text=True)
    assert client.get("/static/img/rewards/inspection.svg").status_code == 200


def test_replacing_and_removing_the_picture_deletes_the_old_files(app, login_as, admin, factories):
    partner = factories.partner("洁亮洗车")
    client = login_as(admin)
    client.post("/admin/rewards/new", data=form_data(partner, picture=upload(camera_photo())),
                content_type="multipart/form-data")
    reward = db.session.scalar(select(Reward))
    first = [reward.picture_key, reward.picture_thumb_key]
    edit = form_data(partner, stock_seen="20", picture=upload(encode(Image.new("RGB", (600, 600), "teal"), "PNG"), "new.png"))
    assert client.post(f"/admin/rewards/{reward.id}/edit", data=edit,
                       content_type="multipart/form-data").status_code == 302
    db.session.expire_all()
    second = [reward.picture_key, reward.picture_thumb_key]
    assert second != first and photo_files(app) == sorted(second)
    assert client.post(f"/admin/rewards/{reward.id}/edit", data=form_data(partner, stock_seen="20", remove_picture="y"),
                       content_type="multipart/form-data").status_code == 302
    db.session.expire_all()
    assert reward.picture_key is None and photo_files(app) == []


def test_a_file_that_is_not_a_photo_is_refused_and_the_form_kept(app, login_as, admin, factories):
    partner = factories.partner("洁亮洗车")
    response = login_as(admin).post("/admin/rewards/new",
                                    data=form_data(partner, title="保留的标题", picture=upload(b"%PDF-1.4 not a photo", "x.jpg")),
                                    content_type="multipart/form-data")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "这个文件不是可用的照片" in body or "JPEG" in body
    assert 'value="保留的标题"' in body
    assert db.session.scalar(select(Reward)) is None and photo_files(app) == []


@pytest.mark.parametrize("role", [None, "partner", "organizer", "moderator"])
def test_only_administrators_upload(app, login_as, client, factories, role):
    partner = factories.partner("洁亮洗车")
    reward = Reward(partner_id=partner.id, kind="wash", title="精洗一次", points_price=100, stock=3)
    db.session.add(reward)
    db.session.commit()
    who = login_as(factories.user(role=role))
    for path in ("/admin/rewards/new", f"/admin/rewards/{reward.id}/edit"):
        response = who.post(path, data=form_data(partner, stock_seen="3", picture=upload(camera_photo())),
                            content_type="multipart/form-data")
        assert response.status_code == 403
    visitor = client.post("/admin/rewards/new", data=form_data(partner, picture=upload(camera_photo())),
                          content_type="multipart/form-data")
    assert visitor.status_code in (302, 401, 403)
    db.session.expire_all()
    assert db.session.get(Reward, reward.id).picture_key is None and photo_files(app) == []


def test_a_withdrawn_rewards_picture_is_for_administrators_only(app, login_as, client, admin, factories):
    partner = factories.partner("洁亮洗车")
    login_as(admin).post("/admin/rewards/new", data=form_data(partner, active="", picture=upload(camera_photo())),
                         content_type="multipart/form-data")
    reward = db.session.scalar(select(Reward))
    assert not reward.active and reward.picture_key
    assert client.get(f"/media/{reward.picture_key}").status_code == 404
    assert login_as(factories.user()).get(f"/media/{reward.picture_thumb_key}").status_code == 404
    served = login_as(admin).get(f"/media/{reward.picture_key}")
    assert served.status_code == 200 and served.headers["Cache-Control"] == PRIVATE
