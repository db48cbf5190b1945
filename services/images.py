"""The photo pipeline: an uploaded file in, a clean display copy and a feed thumbnail out.

`process_upload(data)` decides by CONTENT what a file is (Pillow's detected format, never the
file name or the declared type), refuses anything that is not a photo we can use, fixes the
orientation from EXIF, and re-encodes from pixels only, so nothing of the original file survives:
no EXIF (GPS above all), no XMP, no comments, no trailing bytes (a "polyglot" payload). Colours
tagged with an ICC profile (Display P3 from iPhones) are converted to sRGB; the profile itself
is not kept.

Outputs are always JPEG (quality 82, progressive, optimized), also for PNG with transparency,
which is flattened onto white: phones on weak networks want small bytes.

- the display copy ("full"): long side at most 1280 px, aspect kept;
- the thumbnail: a centred square crop of 400 × 400 (`ImageOps.fit`), for the feed cards and the
  nine-photo grid (九宫格) a story shows: every cell the same shape, so cards have a fixed
  layout known before the image arrives. A photo whose short side is under 400 px gets a
  smaller square. Nothing is ever upscaled.

`store_photo` writes both under unguessable keys; `delete_photo` removes them again (what a
failed story save calls, so a refused story leaves no file behind).

Limits, checked in this order: at most `MAX_BYTES` of input (before any decoding); a known
format; at most `MAX_DECLARED_PIXELS` in the header; at most `MAX_PIXELS` actually decoded
into memory. JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, `Image.draft`) when
the outputs are much smaller, which is faster and lets a 50 or 64 megapixel phone photo through
while it costs no more memory than a 4–16 megapixel one. Neither Pillow's global
`Image.MAX_IMAGE_PIXELS` nor the warnings filters are touched (both are process-wide, not safe
to flip per call in a threaded server); Pillow's own DecompressionBombWarning/Error, which fire
above those thresholds while the header is read, are caught and refused like our own limit.
"""
from __future__ import annotations

import io
import logging
import math
import re
import secrets
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from models import N_, DomainError
from services.storage import Storage, check_key

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # decoded into memory (for JPEG after reduced-scale decoding)
MAX_DECLARED_PIXELS = 89_478_485  # what the header may claim: Pillow's own warning threshold
FULL_MAX = 1280  # long side of the display copy ("phone width" at 3× for a ~430 pt screen)
THUMB_SIZE = 400  # side of the square thumbnail
JPEG_QUALITY = 82
USE_DRAFT = True  # decode JPEGs at a reduced scale when the outputs are much smaller

# Formats we open at all; Pillow does not even try the others (EPS, PSD, TIFF, ...), so their
# parsers never see member uploads. "HEIF" exists only when a plugin (pillow-heif) registers it.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# What the opened file may turn out to be: MPO is a JPEG with extra frames (many phones' JPEGs).
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF"})

MSG_NOT_A_PHOTO = N_("This file is not a photo we can use (JPEG, PNG or WebP).")
MSG_DAMAGED = N_("This photo is damaged and cannot be read.")
MSG_TOO_BIG = N_("A photo can be at most %(mb)s MB.")
MSG_TOO_MANY_PIXELS = N_("This photo has too many pixels (at most %(mp)s megapixels).")
MSG_EMPTY = N_("This file is empty.")

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True)
class StoredPhoto:
    """What a story keeps of a photo once it is stored (see `ProcessedImage.stored`)."""

    full_key: str
    thumb_key: str
    width: int
    height: int
    thumb_width: int
    thumb_height: int


@dataclass(frozen=True)
class ProcessedImage:
    """A photo ready to store: display copy and thumbnail as encoded bytes, and their sizes."""

    full: bytes = field(repr=False)
    thumb: bytes = field(repr=False)
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    content_type: str = "image/jpeg"
    ext: str = "jpg"

    def stored(self, full_key: str, thumb_key: str) -> StoredPhoto:
        return StoredPhoto(full_key, thumb_key, self.width, self.height, self.thumb_width, self.thumb_height)


def process_upload(data: bytes) -> ProcessedImage:
    """Check, orient, clean, resize and re-encode an uploaded photo; DomainError when refused."""
    if not data:
        raise DomainError(MSG_EMPTY)
    if len(data) > MAX_BYTES:
        raise DomainError(MSG_TOO_BIG, mb=MAX_BYTES // (1024 * 1024))
    picture = _decode(data)
    try:
        picture = _oriented(picture)
        picture = _to_rgb(picture)
        full = _fit_within(picture, FULL_MAX)
        side = min(THUMB_SIZE, *picture.size)
        # The thumbnail comes from the display copy when that is big enough (cheaper), else
        # (a panorama) from the decoded picture, so its short side still reaches 400 px.
        source = full if min(full.size) >= side else picture
        thumb = ImageOps.fit(source, (side, side), Image.Resampling.LANCZOS)
        full, thumb = _to_srgb(picture.info.get("icc_profile"), full, thumb)
        return ProcessedImage(
            full=_encode(full), thumb=_encode(thumb), width=full.width, height=full.height,
            thumb_width=thumb.width, thumb_height=thumb.height,
        )
    finally:
        picture.close()


def store_photo(processed: ProcessedImage, storage: Storage, prefix: str) -> tuple[str, str]:
    """Write both copies as ``photos/<prefix>/<random>.jpg`` and ``…_t.jpg``; return the keys.

    The random part is 128 bits (`secrets.token_urlsafe`), so a draft's photos cannot be guessed.
    """
    return _write_pair(storage, f"photos/{prefix}", processed.ext, processed.full, processed.thumb)


def copy_photo(storage: Storage, full_key: str, thumb_key: str) -> tuple[str, str]:
    """Copy a stored photo (both copies) to new random keys in the same folder; return them.

    What hiding a story does, so that copies cached under the old keys match nothing new.
    A file already missing stays missing under its new key."""

    def read(key: str) -> bytes | None:
        try:
            return storage.read(key)
        except FileNotFoundError:
            return None

    folder, ext = full_key.rsplit("/", 1)[0], full_key.rsplit(".", 1)[-1]
    return _write_pair(storage, folder, ext, read(full_key), read(thumb_key))


def _write_pair(storage: Storage, folder: str, ext: str, full: bytes | None, thumb: bytes | None) -> tuple[str, str]:
    """Write a photo's display copy and thumbnail under one new random name in FOLDER (a None
    is skipped). When the second write fails the first is removed again before the error goes on."""
    token = secrets.token_urlsafe(16)
    keys = (check_key(f"{folder}/{token}.{ext}"), check_key(f"{folder}/{token}_t.{ext}"))
    written: list[str] = []
    try:
        for key, data in zip(keys, (full, thumb)):
            if data is not None:
                storage.write(key, data)
                written.append(key)
    except BaseException:
        delete_photo(storage, *written)
        raise
    return keys


@contextmanager
def removed_unless_saved(storage: Storage):
    """Yield a list for the keys of files written inside the block; when the block fails (a
    refusal, a database error), they are deleted again so no orphan file stays behind."""
    written: list[str] = []
    try:
        yield written
    except BaseException:
        delete_photo(storage, *written)
        raise


def delete_photo(storage: Storage, *keys: str | None) -> None:
    """Remove the files under KEYS (empty keys skipped, missing files fine).

    Best effort: it runs on the error path of a failed save, where it must not hide the error
    being handled, so a key that cannot be deleted is logged and the others still go.
    """
    for key in keys:
        if not key:
            continue
        try:
            storage.delete(key)
        except Exception:
            log.exception("could not delete photo file %s", key)


# --- the steps -----------------------------------------------------------------------------


def _decode(data: bytes) -> Image.Image:
    """Open DATA as one of our formats and decode its pixels (first frame), or refuse it."""
    try:
        picture = Image.open(io.BytesIO(data), formats=_open_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Above Pillow's own thresholds; the warning arrives as an exception only where
        # warnings are errors (pytest here), otherwise our check below refuses the same file.
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        # Pillow also lands here when a known signature is followed by a broken header.
        raise DomainError(MSG_DAMAGED if _has_our_signature(data) else MSG_NOT_A_PHOTO) from None
    except Exception:  # a known signature with a broken header: Pillow names no exception types
        log.info("photo refused: unreadable header", exc_info=True)
        raise DomainError(MSG_DAMAGED) from None
    try:
        if picture.format not in ACCEPTED_FORMATS:
            raise DomainError(MSG_NOT_A_PHOTO)
        width, height = picture.size
        if width < 1 or height < 1:
            raise DomainError(MSG_DAMAGED)
        if width * height > MAX_DECLARED_PIXELS:
            raise _too_many_pixels()
        if not _is_complete(picture.format, data):
            raise DomainError(MSG_DAMAGED)
        if USE_DRAFT and picture.format in ("JPEG", "MPO"):
            picture.draft("RGB", _draft_size(width, height))
        if picture.width * picture.height > MAX_PIXELS:
            raise _too_many_pixels()
        picture.load()
    except DomainError:
        picture.close()
        raise
    except Exception:  # truncated, corrupt, bad checksums, trailing garbage inside the stream, ...
        picture.close()
        log.info("photo refused: undecodable (%s)", picture.format, exc_info=True)
        raise DomainError(MSG_DAMAGED) from None
    return picture


def _open_formats() -> tuple[str, ...]:
    """OPEN_FORMATS that a plugin has registered (Pillow raises KeyError for the others)."""
    Image.init()  # registers every plugin once; a no-op afterwards
    return tuple(name for name in OPEN_FORMATS if name in Image.OPEN)


def _has_our_signature(data: bytes) -> bool:
    """Whether DATA starts like one of our formats (by the plugins' own signature checks)."""
    for name in _open_formats():
        accept = Image.OPEN[name][1]
        verdict = accept(data[:16]) if accept is not None else False
        if verdict and not isinstance(verdict, str):  # a str says "recognised, but unsupported"
            return True
    return False


def _is_complete(fmt: str, data: bytes) -> bool:
    """Whether a JPEG runs to its end-of-image marker and a PNG to IEND with every checksum right.

    Pillow refuses truncated files only while `ImageFile.LOAD_TRUNCATED_IMAGES` is False, a
    process-wide switch that any library may flip (WeasyPrint sets it to True when imported, and
    the voucher PDFs import WeasyPrint); with it on, a half-uploaded photo decodes with a grey
    lower half and decoder errors are ignored. So completeness is checked here, from the bytes.
    WebP needs no check: libwebp refuses an incomplete file whatever the switch says.
    """
    if fmt in ("JPEG", "MPO"):
        return _jpeg_is_complete(data)
    if fmt == "PNG":
        return _png_is_complete(data)
    return True


# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart marker
# (RST0–7, part of the data) nor another 0xFF (fill).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def _jpeg_is_complete(data: bytes) -> bool:
    """Walk the segments from SOI; through each scan's entropy-coded data; true on reaching EOI.

    Segment lengths are followed, so an EOI inside an embedded EXIF thumbnail does not count;
    bytes after the EOI (MPO frames, motion-photo video, a polyglot's payload) are not looked at.
    """
    size, position = len(data), 2
    while position < size:
        if data[position] != 0xFF or data[position + 1:position + 2] in (b"", b"\x00", b"\xff"):
            found = _JPEG_MARKER.search(data, position)  # fill or stray bytes: on to the next marker
            if found is None:
                return False
            position = found.start()
        marker = data[position + 1]
        if marker == 0xD9:  # EOI
            return True
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # no length field
            position += 2
            continue
        if position + 4 > size:
            return False
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if end > size or end < position + 4:
            return False
        if marker == 0xDA:  # SOS: the scan's entropy-coded data runs to the next marker
            found = _JPEG_MARKER.search(data, end)
            if found is None:
                return False
            end = found.start()
        position = end
    return False


def _png_is_complete(data: bytes) -> bool:
    """Walk the chunks: each whole, each CRC right, up to IEND."""
    view, size, position = memoryview(data), len(data), 8
    while position + 12 <= size:
        length = int.from_bytes(view[position:position + 4], "big")
        end = position + 12 + length
        if end > size or zlib.crc32(view[position + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return False
        if view[position + 4:position + 8] == b"IEND":
            return True
        position = end
    return False


def _too_many_pixels() -> DomainError:
    return DomainError(MSG_TOO_MANY_PIXELS, mp=MAX_PIXELS // 1_000_000)


def _draft_size(width: int, height: int) -> tuple[int, int]:
    """The smallest decode size (in stored orientation) both outputs can still be made from.

    `draft` picks the largest DCT scale (1/2, 1/4, 1/8) that keeps the image at least this big,
    so the display copy is never made from fewer pixels than it has, nor the thumbnail's square.
    Long and short side rules do not depend on the orientation, so the rotation comes later.
    """
    full_w, full_h = _fitted_size(width, height, FULL_MAX)
    short = min(width, height)
    side = min(THUMB_SIZE, short)
    thumb_w, thumb_h = math.ceil(side * width / short), math.ceil(side * height / short)
    return max(full_w, thumb_w), max(full_h, thumb_h)


def _oriented(picture: Image.Image) -> Image.Image:
    """The picture turned upright as its EXIF Orientation says; unreadable EXIF is ignored."""
    try:
        upright = ImageOps.exif_transpose(picture)
    except Exception:  # a photo is not refused over broken metadata we are about to drop anyway
        log.info("photo EXIF unreadable; orientation left as stored", exc_info=True)
        return picture
    if upright is not picture:
        picture.close()
    return upright


def _to_rgb(picture: Image.Image) -> Image.Image:
    """The picture as plain RGB: transparency flattened onto white, 16-bit grey scaled down."""
    icc = picture.info.get("icc_profile")
    mode = picture.mode
    if mode == "CMYK":
        converted = _cmyk_to_rgb(picture, icc)
        icc = None  # the profile is spent (or does not apply to the RGB we made)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        converted = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    elif mode.startswith("I"):  # 16-bit grey PNG: convert() would clip, not scale
        converted = picture.convert("I").point(lambda value: value * (1 / 256)).convert("L").convert("RGB")
    elif mode != "RGB":
        converted = picture.convert("RGB")
    else:
        converted = picture
    if converted is not picture:
        picture.close()
    converted.info = {"icc_profile": icc} if icc else {}  # used by `_to_srgb`, never written out
    return converted


def _cmyk_to_rgb(picture: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if profile.profile.xcolor_space.strip() == "CMYK":
                return ImageCms.profileToProfile(picture, profile, _SRGB, outputMode="RGB")
        except Exception:
            log.info("photo ICC profile unusable; plain CMYK conversion", exc_info=True)
    return picture.convert("RGB")


def _to_srgb(icc: bytes | None, *pictures: Image.Image) -> tuple[Image.Image, ...]:
    """PICTURES converted from the RGB ICC profile ICC to sRGB; unchanged without a usable one."""
    if not icc:
        return pictures
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return pictures
        transform = ImageCms.buildTransform(profile, _SRGB, "RGB", "RGB")
        return tuple(ImageCms.applyTransform(picture, transform) for picture in pictures)
    except Exception:
        log.info("photo ICC profile unusable; colours kept as they are", exc_info=True)
        return pictures


def _fitted_size(width: int, height: int, longest: int) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _fit_within(picture: Image.Image, longest: int) -> Image.Image:
    size = _fitted_size(*picture.size, longest)
    if size == picture.size:
        return picture
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(picture: Image.Image) -> bytes:
    """JPEG from the pixels alone: `info` is emptied so no EXIF, XMP, ICC or comment is written."""
    picture.info = {}
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
    return out.getvalue()
