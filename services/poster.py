"""The invite poster (邀请海报): a phone-sized PNG drawn with Pillow, to save and send in WeChat.

750 × 1334 (an iPhone 8 screen at 2×, what WeChat shows full-screen without cropping): the app's
name, who invites, a short pitch and the QR code of the member's invite link, big enough for
WeChat's "long-press to recognise" (识别图中二维码). Texts come in already translated, so this
module knows nothing of requests or languages.

The Chinese font is the system's (Debian's fonts-wqy-microhei, installed by bin/system-deps);
none is shipped. Without one `PosterFontMissing` says what to install: a poster of empty boxes
(tofu) is worse than none.

Drawing takes ~0.1 s; `invite_poster` keeps the last few hundred posters in memory, keyed by
everything drawn on them (a changed nickname or language draws a new one).
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 750, 1334
QR_SIDE = 420  # px, quiet zone included
MARGIN = 50
CARD_TOP, CARD_BOTTOM = 330, 1220
TOP, BOTTOM = (31, 111, 235), (12, 58, 140)  # the app's blue (#1f6feb), darkening downwards
INK, MUTED = (31, 35, 40), (95, 104, 116)

# Debian's WenQuanYi Micro Hei first (what the voucher PDFs use), then other common CJK fonts.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


class PosterFontMissing(RuntimeError):
    """No Chinese font on this machine."""


@dataclass(frozen=True)
class PosterText:
    """What the poster says, in the member's language."""

    brand: str  # 车友圈
    tagline: str  # 二手车车主的社区
    headline: str  # xxx 邀请你加入车友圈
    pitch: tuple[str, ...]  # two or three short lines
    scan_hint: str  # 长按识别二维码……


@lru_cache(maxsize=1)
def font_path() -> str:
    """The path of a font with Chinese glyphs: a known Debian path, else what fontconfig lists."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    if shutil.which("fc-list"):
        listed = subprocess.run(["fc-list", ":lang=zh-cn", "file"], capture_output=True, text=True, timeout=10,
                                check=False).stdout
        files = sorted(line.strip().rstrip(":") for line in listed.splitlines() if line.strip())
        if files:
            return files[0]
    raise PosterFontMissing(
        "no Chinese font found for the invite poster: install Debian's fonts-wqy-microhei "
        "(bin/system-deps does), or any font fontconfig lists for :lang=zh-cn"
    )


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(), size)


# A CJK character (or full-width punctuation) breaks anywhere; a Latin word stays whole.
_TOKENS = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]|[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+|\s+")


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    """TEXT in lines no wider than WIDTH, at most MAX_LINES (the last one ends in … when cut)."""
    lines, line = [], ""
    for token in _TOKENS.findall(text):
        candidate = line + token
        if draw.textlength(candidate, font=font) <= width or not line.strip():
            line = candidate
            continue
        lines.append(line.rstrip())
        line = token.lstrip()
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and draw.textlength(last + "…", font=font) > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "…"]
    # A single token wider than the line (a very long Latin word): cut it to fit.
    fitted = []
    for text_line in lines:
        while draw.textlength(text_line, font=font) > width and len(text_line) > 1:
            text_line = text_line[:-2] + "…"
        fitted.append(text_line)
    return fitted


def _centered(draw, y: int, lines: list[str], font, fill, spacing: int, bold: bool = False) -> int:
    """Draw LINES centred from Y down; return the y below the last one."""
    for line in lines:
        draw.text((WIDTH // 2, y), line, font=font, fill=fill, anchor="ma",
                  stroke_width=1 if bold else 0, stroke_fill=fill)
        y += font.size + spacing
    return y


def _qr_image(url: str) -> Image.Image:
    """The QR of URL as a QR_SIDE-wide black-on-white image, whole modules only (crisp)."""
    qr = segno.make_qr(url, error="m", boost_error=False)
    border = 4
    modules = qr.symbol_size(scale=1, border=border)[0]
    scale = max(1, QR_SIDE // modules)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=border, dark="#000", light="#fff")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    if image.width != QR_SIDE:  # pad to the fixed side with white (the quiet zone grows a little)
        padded = Image.new("RGB", (QR_SIDE, QR_SIDE), "white")
        padded.paste(image, ((QR_SIDE - image.width) // 2, (QR_SIDE - image.height) // 2))
        image = padded
    return image


def _background() -> Image.Image:
    """A vertical gradient in the app's blue (rows of one colour: PNG compresses them to nothing)."""
    column = Image.new("RGB", (1, HEIGHT))
    for y in range(HEIGHT):
        t = y / (HEIGHT - 1)
        column.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM)))
    return column.resize((WIDTH, HEIGHT), Image.Resampling.NEAREST)


def draw_poster(text: PosterText, url: str) -> Image.Image:
    """The poster as an image (see the module docstring for the layout)."""
    image = _background()
    draw = ImageDraw.Draw(image)
    inner = WIDTH - 2 * MARGIN - 60

    brand = _font(96)
    _centered(draw, 96, [text.brand], brand, "white", 0, bold=True)
    tagline = _font(34)
    _centered(draw, 226, _wrap(draw, text.tagline, tagline, inner, 1), tagline, (220, 232, 255), 0)

    draw.rounded_rectangle((MARGIN, CARD_TOP, WIDTH - MARGIN, CARD_BOTTOM), radius=28, fill="white")
    headline = _font(40)
    y = _centered(draw, CARD_TOP + 48, _wrap(draw, text.headline, headline, inner, 2), headline, INK, 14, bold=True)
    pitch = _font(28)
    y += 10
    for line in text.pitch[:3]:
        y = _centered(draw, y, _wrap(draw, line, pitch, inner, 1), pitch, MUTED, 12)

    hint = _font(28)
    block = QR_SIDE + 20 + hint.size  # the QR and the hint under it, centred in the card's rest
    qr_top = y + max(20, (CARD_BOTTOM - 40 - y - block) // 2)
    image.paste(_qr_image(url), ((WIDTH - QR_SIDE) // 2, qr_top))
    _centered(draw, qr_top + QR_SIDE + 20, _wrap(draw, text.scan_hint, hint, inner, 1), hint, INK, 0)

    small = _font(22)
    _centered(draw, CARD_BOTTOM + 40, _wrap(draw, url, small, WIDTH - 2 * MARGIN, 1), small, (220, 232, 255), 0)
    return image


@lru_cache(maxsize=256)  # per member (the URL) and everything drawn (nickname, language): ~60 kB each
def invite_poster(text: PosterText, url: str) -> bytes:
    """The poster as PNG bytes."""
    buffer = io.BytesIO()
    draw_poster(text, url).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
