"""Draw the PWA icons (192, 512, maskable 512) with Pillow. Run once; the PNGs are committed."""
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "static" / "img"
BLUE, WHITE = (31, 111, 235), (255, 255, 255)


def car(draw: ImageDraw.ImageDraw, size: int, scale: float) -> None:
    s = size * scale / 64
    o = size * (1 - scale) / 2
    p = lambda x, y: (o + x * s, o + y * s)  # noqa: E731
    draw.rounded_rectangle([p(12, 26), p(52, 46)], radius=4 * s, fill=WHITE)
    draw.polygon([p(17, 26), p(22, 18), p(42, 18), p(47, 26)], fill=WHITE)
    draw.polygon([p(21, 26), p(24.5, 21), p(39.5, 21), p(43, 26)], fill=BLUE)
    for cx in (20, 44):
        draw.ellipse([p(cx - 3, 35), p(cx + 3, 41)], fill=BLUE)
    for cx in (18, 46):
        draw.rounded_rectangle([p(cx - 4, 44), p(cx + 4, 52)], radius=2 * s, fill=WHITE)


def icon(size: int, maskable: bool) -> Image.Image:
    img = Image.new("RGB" if maskable else "RGBA", (size, size), BLUE if maskable else (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if not maskable:
        draw.rounded_rectangle([0, 0, size - 1, size - 1], radius=size // 5, fill=BLUE)
    car(draw, size, 0.62 if maskable else 0.85)  # maskable keeps the art inside the safe zone
    return img


if __name__ == "__main__":
    icon(192, False).save(OUT / "icon-192.png", optimize=True)
    icon(512, False).save(OUT / "icon-512.png", optimize=True)
    icon(512, True).save(OUT / "icon-maskable-512.png", optimize=True)
