"""``make icons``: the page's PNG icons (static/icons/), drawn from the shapes of icon.svg; run once, committed.

A phone's home screen wants bitmaps: 192 and 512 pixels for the web app
manifest (one of them "maskable", drawn to the edges with the faders inside
the middle 80 %), and 180 for Apple's ``apple-touch-icon``. No image library
is needed: three faders are rounded rectangles and round-capped lines,
filled here with 4 x 4 samples per pixel and written with :mod:`zlib`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "static" / "icons"

BACKGROUND = (0x14, 0x17, 0x1C)
SLOT = (0x3A, 0x41, 0x4B)
CAP = (0xD9, 0x96, 0x2B)
SAMPLES = 4

#: A shape: does it cover the point (x, y), in icon.svg's 64-unit square?
Shape = Callable[[float, float], bool]


def rounded(x: float, y: float, w: float, h: float, r: float) -> Shape:
    def inside(px: float, py: float) -> bool:
        if not (x <= px <= x + w and y <= py <= y + h):
            return False
        dx = max(x + r - px, 0.0, px - (x + w - r))
        dy = max(y + r - py, 0.0, py - (y + h - r))
        return dx * dx + dy * dy <= r * r

    return inside


def capsule(x: float, y1: float, y2: float, half: float) -> Shape:
    def inside(px: float, py: float) -> bool:
        cy = min(max(py, y1), y2)
        return (px - x) ** 2 + (py - cy) ** 2 <= half * half

    return inside


def layers(full_bleed: bool) -> list[tuple[tuple[int, int, int], Shape]]:
    """icon.svg's shapes, back to front; a full-bleed background for maskable and Apple icons."""
    back = rounded(0, 0, 64, 64, 0 if full_bleed else 12)
    slots = [capsule(x, 12, 52, 2) for x in (18, 32, 46)]
    caps = [rounded(11, 30, 14, 8, 2), rounded(25, 18, 14, 8, 2), rounded(39, 40, 14, 8, 2)]
    return [(BACKGROUND, back)] + [(SLOT, s) for s in slots] + [(CAP, c) for c in caps]


def render(size: int, full_bleed: bool = False, inset: float = 0.0) -> bytes:
    """RGBA rows of the icon at ``size`` pixels; ``inset``: the share of each side left to the background."""
    shapes = layers(full_bleed)
    scale = 64 / (size * (1 - 2 * inset))
    offset = inset * size
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # PNG filter: none
        for i in range(size):
            totals = [0.0, 0.0, 0.0, 0.0]
            for sj in range(SAMPLES):
                for si in range(SAMPLES):
                    px = (i + (si + 0.5) / SAMPLES - offset) * scale
                    py = (j + (sj + 0.5) / SAMPLES - offset) * scale
                    colour = None
                    if full_bleed:
                        colour = BACKGROUND
                    for fill, shape in shapes:
                        if shape(px, py):
                            colour = fill
                    if colour is not None:
                        totals[0] += colour[0]
                        totals[1] += colour[1]
                        totals[2] += colour[2]
                        totals[3] += 255
            n = SAMPLES * SAMPLES
            alpha = totals[3] / n
            if alpha:
                cover = totals[3] / 255
                rows += bytes([round(totals[0] / cover), round(totals[1] / cover), round(totals[2] / cover)])
            else:
                rows += bytes(3)
            rows.append(round(alpha))
    return bytes(rows)


def png(size: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


#: file -> (size, full bleed, inset)
ICON_FILES = {
    "icon-192.png": (192, False, 0.0),
    "icon-512.png": (512, False, 0.0),
    "icon-maskable-512.png": (512, True, 0.1),
    "apple-touch-icon.png": (180, True, 0.06),
}


def main() -> None:
    for name, (size, full_bleed, inset) in ICON_FILES.items():
        (ICONS / name).write_bytes(png(size, render(size, full_bleed, inset)))
        print(f"wrote {ICONS / name}")  # noqa: T201


if __name__ == "__main__":
    main()
