"""The photo pipeline: content decides, metadata goes, sizes hold, refusals leave nothing behind.

Every input is made here with Pillow (or by hand, for headers that lie); nothing is read from disk.
"""
from __future__ import annotations

import io
import os
import re
import struct
import time
import zlib

import pytest
from PIL import Image, ImageCms, ImageFile

from models import DomainError
from services import images
from services.images import delete_photo, process_upload, store_photo
from services.storage import LocalStorage, StorageKeyError

GPS_IFD = 0x8825
ORIENTATION = 0x0112


# --- making inputs -------------------------------------------------------------------------


def encode(picture: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **params)
    return out.getvalue()


def photo_like(width: int, height: int) -> Image.Image:
    """Gradients with grain: compresses and decodes roughly like a real photo (unlike a flat fill)."""
    noise = Image.effect_noise((width, height), 40)
    ramp = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (Image.blend(noise, ramp, 0.6),
                               Image.blend(noise, ramp.transpose(Image.Transpose.ROTATE_180), 0.7), ramp))


def camera_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"  # Make
    exif[0x0110] = "Redmi Note 12"  # Model
    exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (31.0, 14.0, 5.5)  # Shanghai, to the street
    gps[3], gps[4] = "E", (121.0, 28.0, 9.1)
    return exif


def red_left_blue_right(width: int = 200, height: int = 100) -> Image.Image:
    picture = Image.new("RGB", (width, height), "blue")
    picture.paste("red", (0, 0, width // 2, height))
    return picture


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims WIDTH × HEIGHT pixels, with (almost) no data: a decompression bomb's
    first bytes. Pillow reads the size from IHDR without decoding anything."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim WIDTH × HEIGHT."""
    data = bytearray(encode(Image.new("RGB", (16, 16), "gray")))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def swapped_primaries_profile() -> bytes:
    """A minimal ICC v2 RGB display profile whose red and green primaries are sRGB's swapped.

    Stands in for Display P3 (no such profile ships here): pixels tagged with it must come out
    with red and green exchanged if, and only if, the pipeline really converts to sRGB.
    """
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
    text = b"swapped primaries\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * (4 + 4 + 2 + 1 + 67)
    desc += b"\0" * (-len(desc) % 4)
    srgb_red, srgb_green, srgb_blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(*srgb_green)),
            (b"gXYZ", xyz(*srgb_red)), (b"bXYZ", xyz(*srgb_blue)), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249)
              + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def opened(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def assert_clean_jpeg(data: bytes) -> None:
    """Pixels only: no EXIF (GPS), no XMP, no ICC profile, no comment, nothing after the image."""
    picture = opened(data)
    assert picture.format == "JPEG" and picture.mode == "RGB"
    assert len(picture.getexif()) == 0
    assert "exif" not in picture.info and "xmp" not in picture.info
    assert "icc_profile" not in picture.info and "comment" not in picture.info
    assert b"Exif\x00\x00" not in data and b"http://ns.adobe.com/xap/1.0/" not in data
    assert b"ICC_PROFILE" not in data
    assert data.endswith(b"\xff\xd9")


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


# --- what comes out ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_gps_exif_is_removed_and_orientation_applied(fmt):
    extra = {"xmp": b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>31,14.09N</exif:GPSLatitude>'
                    b"</x:xmpmeta>", "comment": b"shot at home"} if fmt == "JPEG" else {}
    data = encode(red_left_blue_right(200, 100), fmt, exif=camera_exif(orientation=6), **extra)
    source = Image.open(io.BytesIO(data))  # the input really carries what must go
    assert source.getexif()[ORIENTATION] == 6 and source.getexif().get_ifd(GPS_IFD)[2] == (31.0, 14.0, 5.5)

    result = process_upload(data)

    for output in (result.full, result.thumb):
        assert_clean_jpeg(output)
        assert b"Xiaomi" not in output and b"GPS" not in output and b"shot at home" not in output
    full = opened(result.full)
    # Orientation 6: stored sideways, shown turned 90° clockwise. The left (red) half is now on top.
    assert full.size == (100, 200) == (result.width, result.height)
    assert near(full.getpixel((50, 20)), (255, 0, 0)) and near(full.getpixel((50, 180)), (0, 0, 255))
    assert (result.thumb_width, result.thumb_height) == (100, 100) == opened(result.thumb).size
    assert result.content_type == "image/jpeg" and result.ext == "jpg"


def test_png_with_alpha_is_flattened_onto_white_as_jpeg():
    picture = Image.new("RGBA", (300, 300), (0, 0, 0, 0))  # transparent black must not turn black
    picture.paste((200, 0, 0, 255), (100, 100, 200, 200))
    result = process_upload(encode(picture, "PNG"))
    full = opened(result.full)
    assert_clean_jpeg(result.full)
    assert near(full.getpixel((10, 10)), (255, 255, 255), 8)
    assert near(full.getpixel((150, 150)), (200, 0, 0), 20)


def test_palette_png_with_a_transparent_colour_is_flattened_too():
    picture = Image.new("P", (64, 64), 1)
    picture.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    picture.paste(0, (0, 0, 32, 64))
    result = process_upload(encode(picture, "PNG", transparency=0))
    full = opened(result.full)
    assert near(full.getpixel((8, 32)), (255, 255, 255), 8) and near(full.getpixel((56, 32)), (0, 128, 0), 20)


@pytest.mark.parametrize(("size", "params"), [((1600, 1200), {"quality": 80}), ((400, 300), {"lossless": True})],
                         ids=["lossy", "lossless"])
def test_webp_is_accepted(size, params):
    result = process_upload(encode(photo_like(*size), "WEBP", **params))
    assert_clean_jpeg(result.full)
    assert (result.width, result.height) == (min(size[0], 1280), min(size[1], 960))


def test_an_animated_webp_gives_its_first_frame():
    frames = [Image.new("RGB", (80, 60), colour) for colour in ("red", "blue")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    assert near(opened(process_upload(data).full).getpixel((40, 30)), (255, 0, 0))


def test_webp_with_alpha_is_flattened():
    picture = Image.new("RGBA", (100, 100), (0, 0, 255, 0))
    result = process_upload(encode(picture, "WEBP", lossless=True))
    assert near(opened(result.full).getpixel((50, 50)), (255, 255, 255), 8)


@pytest.mark.parametrize(("size", "full", "thumb"), [
    ((5000, 3000), (1280, 768), (400, 400)),
    ((3000, 5000), (768, 1280), (400, 400)),
    ((4000, 500), (1280, 160), (400, 400)),  # a panorama: the thumbnail still gets 400 px of height
    ((1280, 720), (1280, 720), (400, 400)),
    ((300, 200), (300, 200), (200, 200)),  # never upscaled
    ((1, 1), (1, 1), (1, 1)),
])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_sizes_fit_the_limits_keep_the_aspect_and_never_upscale(size, full, thumb, fmt):
    result = process_upload(encode(Image.new("RGB", size, (90, 120, 150)), fmt))
    assert (result.width, result.height) == full == opened(result.full).size
    assert (result.thumb_width, result.thumb_height) == thumb == opened(result.thumb).size
    assert abs(result.width / result.height - size[0] / size[1]) < 0.01
    assert max(full) <= images.FULL_MAX and max(thumb) <= images.THUMB_SIZE


def test_the_thumbnail_is_a_centred_square_crop():
    picture = Image.new("RGB", (900, 300), "black")
    picture.paste("white", (300, 0, 600, 300))  # the middle third fills the square exactly
    thumb = opened(process_upload(encode(picture, "PNG")).thumb)
    assert thumb.size == (300, 300)
    assert near(thumb.getpixel((10, 150)), (255, 255, 255), 10) and near(thumb.getpixel((290, 150)), (255, 255, 255), 10)


def test_a_photo_with_an_icc_profile_is_converted_to_srgb_and_the_profile_dropped():
    icc = swapped_primaries_profile()
    ImageCms.ImageCmsProfile(io.BytesIO(icc))  # the hand-made profile is valid for LittleCMS
    result = process_upload(encode(Image.new("RGB", (600, 400), (255, 0, 0)), "JPEG", icc_profile=icc))
    assert_clean_jpeg(result.full)
    assert_clean_jpeg(result.thumb)
    # "red" in that profile is sRGB green: converted, not just stripped.
    assert near(opened(result.full).getpixel((300, 200)), (0, 255, 0), 30)
    assert near(opened(result.thumb).getpixel((200, 200)), (0, 255, 0), 30)


def test_a_broken_icc_profile_is_dropped_and_the_photo_kept():
    result = process_upload(encode(Image.new("RGB", (50, 50), (10, 200, 10)), "JPEG", icc_profile=b"not a profile" * 10))
    assert_clean_jpeg(result.full)
    assert near(opened(result.full).getpixel((25, 25)), (10, 200, 10), 12)


def test_cmyk_jpeg_and_sixteen_bit_grey_png_come_out_as_rgb():
    cmyk = process_upload(encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"))
    assert near(opened(cmyk.full).getpixel((32, 32)), (255, 0, 0), 30)
    grey = Image.new("I", (64, 64), 32768).convert("I;16")  # half of 16 bits: mid grey, not white
    assert near(opened(process_upload(encode(grey, "PNG")).full).getpixel((32, 32)), (128, 128, 128), 4)


def test_an_mpo_from_a_phone_is_a_jpeg_and_accepted():
    data = encode(red_left_blue_right(), "MPO", save_all=True, append_images=[Image.new("RGB", (200, 100))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    result = process_upload(data)
    assert_clean_jpeg(result.full)
    assert near(opened(result.full).getpixel((20, 50)), (255, 0, 0))


def test_trailing_bytes_after_a_valid_jpeg_are_not_carried_over():
    """Phones append data after the image (motion photos); so does a polyglot. Only pixels survive."""
    payload = b"<script>alert(1)</script>PK\x03\x04" + os.urandom(256)
    result = process_upload(encode(red_left_blue_right()) + payload)
    assert b"<script>" not in result.full and b"PK\x03\x04" not in result.full
    assert_clean_jpeg(result.full)


def test_a_fifty_megapixel_jpeg_is_decoded_at_reduced_scale(monkeypatch):
    """Phones with 50 MP sensors: above MAX_PIXELS as stored, but decoded at 1/4 scale."""
    data = encode(Image.new("RGB", (8192, 6144), (40, 80, 120)))
    result = process_upload(data)
    assert (result.width, result.height) == (1280, 960)
    monkeypatch.setattr(images, "USE_DRAFT", False)  # full decode: then the memory limit applies
    with pytest.raises(DomainError) as refused:
        process_upload(data)
    assert refused.value.message == images.MSG_TOO_MANY_PIXELS and refused.value.params == {"mp": 40}


@pytest.mark.parametrize(("size", "decoded"), [
    ((4000, 3000), (2000, 1500)),  # 1/2: the display copy needs 1280 × 960
    ((8000, 6000), (2000, 1500)),  # 1/4
    ((11000, 8000), (1375, 1000)),  # 1/8, libjpeg's smallest
    ((4000, 500), (4000, 500)),  # a panorama: the square thumbnail needs all 500 px of height
    ((1000, 800), (1000, 800)),  # small already
])
def test_draft_decodes_no_smaller_than_both_outputs_need(size, decoded):
    picture = Image.open(io.BytesIO(jpeg_claiming(*size)))
    needed = images._draft_size(*size)
    picture.draft("RGB", needed)
    assert picture.size == decoded
    assert picture.width >= needed[0] and picture.height >= needed[1]


# --- refusals ------------------------------------------------------------------------------


def gif() -> bytes:
    return encode(Image.new("P", (20, 20)), "GIF")


def truncated_jpeg() -> bytes:
    data = encode(photo_like(400, 300))
    return data[: len(data) // 2]


REFUSED = {
    "text file named photo.jpg": (lambda: b"just some text, saved as photo.jpg\n" * 20, images.MSG_NOT_A_PHOTO),
    "gif": (gif, images.MSG_NOT_A_PHOTO),
    "svg": (lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<script>alert(1)</script></svg>', images.MSG_NOT_A_PHOTO),
    "pdf": (lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", images.MSG_NOT_A_PHOTO),
    "bmp (Pillow reads it, we do not)": (lambda: encode(Image.new("RGB", (10, 10)), "BMP"), images.MSG_NOT_A_PHOTO),
    "tiff": (lambda: encode(Image.new("RGB", (10, 10)), "TIFF"), images.MSG_NOT_A_PHOTO),
    "html behind a jpeg signature": (lambda: b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>",
                                     images.MSG_DAMAGED),
    "jpeg magic then garbage": (lambda: b"\xff\xd8\xff\xdb" + os.urandom(4096), images.MSG_DAMAGED),
    "truncated jpeg": (truncated_jpeg, images.MSG_DAMAGED),
    "truncated png": (lambda: encode(photo_like(200, 200), "PNG")[:5000], images.MSG_DAMAGED),
    "png with a bad checksum": (lambda: png_claiming(10, 10)[:29] + b"\0\0\0\0" + png_claiming(10, 10)[33:],
                                images.MSG_DAMAGED),
    "empty": (lambda: b"", images.MSG_EMPTY),
    "over 10 MB": (lambda: b"\xff\xd8" + os.urandom(images.MAX_BYTES), images.MSG_TOO_BIG),
    "png claiming 30000 x 30000": (lambda: png_claiming(30000, 30000), images.MSG_TOO_MANY_PIXELS),
    "png claiming 10000 x 10000": (lambda: png_claiming(10000, 10000), images.MSG_TOO_MANY_PIXELS),
    "png claiming 8000 x 6000": (lambda: png_claiming(8000, 6000), images.MSG_TOO_MANY_PIXELS),
    "real 1-bit png of 20000 x 20000": (lambda: encode(Image.new("1", (20000, 20000)), "PNG"),
                                        images.MSG_TOO_MANY_PIXELS),
    "real 1-bit png of 8000 x 6000": (lambda: encode(Image.new("1", (8000, 6000)), "PNG"), images.MSG_TOO_MANY_PIXELS),
    "jpeg claiming 65000 x 65000": (lambda: jpeg_claiming(65000, 65000), images.MSG_TOO_MANY_PIXELS),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_input_is_a_domain_error_and_writes_nothing(case, tmp_path):
    make, message = REFUSED[case]
    storage = LocalStorage(tmp_path)
    with pytest.raises(DomainError) as refused:
        keys = store_photo(process_upload(make()), storage, "7")  # the caller's order of calls
        delete_photo(storage, *keys)
    assert refused.value.message == message
    assert storage.keys("photos/") == [] and list(tmp_path.iterdir()) == []


def test_the_size_limit_is_10_mb_and_checked_before_decoding():
    with pytest.raises(DomainError) as refused:
        process_upload(b"\xff\xd8" + bytes(images.MAX_BYTES - 1))
    assert refused.value.message == images.MSG_TOO_BIG and refused.value.params == {"mb": 10}
    assert images.MAX_BYTES == 10 * 1024 * 1024
    # One byte less is not refused for its size (it is refused as damaged: zeros are no JPEG).
    with pytest.raises(DomainError) as damaged:
        process_upload(b"\xff\xd8\xff" + bytes(images.MAX_BYTES - 3))
    assert damaged.value.message == images.MSG_DAMAGED


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bombs_are_refused_where_pillow_only_warns():
    """In production the warning is not an error; the declared-pixels check refuses the same file."""
    with pytest.raises(DomainError) as refused:
        process_upload(png_claiming(10000, 10000))
    assert refused.value.message == images.MSG_TOO_MANY_PIXELS and refused.value.params == {"mp": 40}


def test_pillow_globals_are_left_alone():
    """Limits are per call: Pillow's process-wide settings stay as they were."""
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    for case in ("truncated jpeg", "png claiming 30000 x 30000", "png claiming 8000 x 6000", "gif"):
        with pytest.raises(DomainError):
            process_upload(REFUSED[case][0]())
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def progressive_jpeg() -> bytes:
    return encode(photo_like(400, 300), progressive=True)


def with_embedded_thumbnail() -> bytes:
    """Like a phone JPEG: a complete small JPEG (with its own end marker) inside an APP segment
    before the image, as the EXIF thumbnail sits in APP1."""
    thumbnail = encode(Image.new("RGB", (160, 120), "green"))
    data = encode(photo_like(400, 300))
    return data[:2] + b"\xff\xe9" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail + data[2:]


DAMAGED = {
    "jpeg cut in half": lambda: truncated_jpeg(),
    "jpeg without its last bytes": lambda: encode(photo_like(400, 300))[:-10],
    "progressive jpeg cut in half": lambda: (lambda d: d[: len(d) // 2])(progressive_jpeg()),
    "jpeg cut after its embedded thumbnail": lambda: (lambda d: d[: len(d) * 2 // 3])(with_embedded_thumbnail()),
    "png cut in half": lambda: encode(photo_like(200, 200), "PNG")[:5000],
    "png without IEND": lambda: encode(photo_like(200, 200), "PNG")[:-12],
    "png with a flipped byte": lambda: (lambda d: d[:3000] + bytes([d[3000] ^ 1]) + d[3001:])(
        encode(photo_like(200, 200), "PNG")),
    "webp cut in half": lambda: (lambda d: d[: len(d) // 2])(encode(photo_like(200, 200), "WEBP")),
}


@pytest.mark.parametrize("load_truncated", [False, True], ids=["pillow default", "flag flipped by weasyprint"])
@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_files_are_refused_whatever_load_truncated_images_says(case, load_truncated, monkeypatch):
    """WeasyPrint (the voucher PDFs) sets ImageFile.LOAD_TRUNCATED_IMAGES = True for the whole
    process when imported; half-uploaded photos must be refused all the same."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    with pytest.raises(DomainError) as refused:
        process_upload(DAMAGED[case]())
    assert refused.value.message == images.MSG_DAMAGED


@pytest.mark.parametrize("load_truncated", [False, True])
def test_complete_files_pass_the_completeness_check(load_truncated, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    for data in (with_embedded_thumbnail(), progressive_jpeg(), encode(photo_like(200, 200), "PNG"),
                 encode(red_left_blue_right(), "MPO", save_all=True, append_images=[Image.new("RGB", (200, 100))]),
                 encode(red_left_blue_right()) + b"\xff\xd8 trailing bytes"):
        assert process_upload(data).width > 0


@pytest.mark.skipif("HEIF" in Image.registered_extensions().values(), reason="a HEIF plugin is installed here")
def test_heic_is_refused_as_unusable_without_a_heif_plugin():
    """Pillow alone cannot read HEIC (pillow-heif is not a dependency): an iPhone original is refused
    with the message naming what works, not as damaged."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + os.urandom(2048)
    with pytest.raises(DomainError) as refused:
        process_upload(heic)
    assert refused.value.message == images.MSG_NOT_A_PHOTO


# --- storing -------------------------------------------------------------------------------


def test_store_and_delete_round_trip(tmp_path):
    storage = LocalStorage(tmp_path)
    processed = process_upload(encode(photo_like(1600, 900)))
    full_key, thumb_key = store_photo(processed, storage, "42")
    token = re.fullmatch(r"photos/42/([A-Za-z0-9_-]{22})\.jpg", full_key).group(1)
    assert thumb_key == f"photos/42/{token}_t.jpg"
    assert storage.read(full_key) == processed.full and storage.read(thumb_key) == processed.thumb
    assert storage.keys("photos/") == sorted([full_key, thumb_key])

    again = store_photo(processed, storage, "42")  # same photo twice: two files, never overwritten
    assert set(again).isdisjoint({full_key, thumb_key})

    delete_photo(storage, full_key, thumb_key)
    assert not storage.exists(full_key) and not storage.exists(thumb_key)
    delete_photo(storage, full_key, None, "")  # already gone, or nothing to delete: no error
    delete_photo(storage, *again)
    assert storage.keys("photos/") == []


def test_stored_gives_what_a_story_keeps():
    processed = process_upload(encode(Image.new("RGB", (640, 480))))
    kept = processed.stored("photos/1/a.jpg", "photos/1/a_t.jpg")
    assert (kept.full_key, kept.thumb_key, kept.width, kept.height, kept.thumb_width, kept.thumb_height) == (
        "photos/1/a.jpg", "photos/1/a_t.jpg", 640, 480, 400, 400)
    assert "full=" not in repr(processed) and len(repr(processed)) < 200  # no megabytes in logs


def test_a_failed_second_write_removes_the_first(tmp_path):
    class ThumbWriteFails(LocalStorage):
        def write(self, key, data):
            if key.endswith("_t.jpg"):
                raise OSError("disk full")
            super().write(key, data)

    storage = ThumbWriteFails(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        store_photo(process_upload(encode(Image.new("RGB", (50, 50)))), storage, "7")
    assert storage.keys("photos/") == []


def test_a_bad_prefix_is_refused_before_writing(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    with pytest.raises(StorageKeyError):
        store_photo(process_upload(encode(Image.new("RGB", (50, 50)))), storage, "../escape")
    assert not (tmp_path / "files").exists() and not (tmp_path / "escape").exists()


def test_delete_keeps_going_when_one_key_fails(tmp_path, caplog):
    storage = LocalStorage(tmp_path)
    full_key, thumb_key = store_photo(process_upload(encode(Image.new("RGB", (50, 50)))), storage, "7")
    delete_photo(storage, "../outside.jpg", full_key, thumb_key)  # a bad key is logged, not raised
    assert storage.keys("photos/") == []
    assert "could not delete photo file ../outside.jpg" in caplog.text


# --- time ------------------------------------------------------------------------------------


def test_time_for_a_12_megapixel_jpeg(monkeypatch, capsys):
    """A weak phone uploads these; processing runs inside the request. Printed for BENCHMARKS.md."""
    data = encode(photo_like(4000, 3000), quality=90)

    def best_of(rounds: int = 3) -> tuple[float, images.ProcessedImage]:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            result = process_upload(data)
            times.append(time.perf_counter() - start)
        return min(times), result

    with_draft, result = best_of()
    monkeypatch.setattr(images, "USE_DRAFT", False)
    without_draft, same = best_of()
    assert (result.width, result.height) == (same.width, same.height) == (1280, 960)
    with capsys.disabled():
        print(f"\nprocess_upload, 4000x3000 JPEG ({len(data) / 1e6:.1f} MB, q90): "
              f"{with_draft * 1000:.0f} ms with draft, {without_draft * 1000:.0f} ms without; "
              f"out {len(result.full) / 1e3:.0f} KB + thumb {len(result.thumb) / 1e3:.0f} KB")
