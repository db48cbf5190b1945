"""A fake camera for Chromium: a YUV4MPEG2 video of a QR code, for
`--use-file-for-fake-video-capture`, so the check-in page's real camera path can be tested."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import segno
from PIL import Image

WIDTH, HEIGHT = 640, 480


def qr_frame(data: str, size: int = 360) -> Image.Image:
    """DATA's QR code, black on white, centred in a grey 640×480 frame (a ticket held up to the phone)."""
    qr = segno.make_qr(data, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    scale = max(1, size // modules)
    buffer = BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=4)
    buffer.seek(0)
    code = Image.open(buffer).convert("L")
    frame = Image.new("L", (WIDTH, HEIGHT), 150)
    frame.paste(code, ((WIDTH - code.width) // 2, (HEIGHT - code.height) // 2))
    return frame


def write_y4m(path: Path, frame: Image.Image, frames: int = 10) -> Path:
    """FRAME repeated as a 4:2:0 YUV4MPEG2 file; grey has neutral chroma (U = V = 128)."""
    assert frame.size == (WIDTH, HEIGHT) and frame.mode == "L"
    luma = frame.tobytes()
    chroma = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(luma)
            out.write(chroma)
            out.write(chroma)
    return path
