"""Draw BoxSeg's app icon (own artwork) and write assets/icon/boxseg.{png,ico,icns}.

The motif is what the app does: a dark rounded tile (a scan slice), a coloured mask blob and the
box drawn around it, with corner handles. Pure Pillow, deterministic; rerun after changing it:

    python packaging/make_icon.py

boxseg.png (512 px) is the Qt window icon and the Linux icon; boxseg.ico (16-256 px) the Windows
executable/installer icon; boxseg.icns (16-1024 px) the macOS app icon.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "assets" / "icon"
S = 2048  # drawn at 2x the largest size, then downsampled (anti-aliasing)

TILE = (27, 33, 48, 255)          # dark slate
TILE_EDGE = (62, 74, 99, 255)
BODY = (72, 82, 102, 255)         # the "patient" cross-section
BODY_EDGE = (120, 132, 156, 255)
MASK = (255, 138, 61, 215)        # orange mask, slightly translucent
MASK_EDGE = (255, 196, 140, 255)
BOX = (64, 200, 255, 255)         # cyan prompt box


def _scale(v: float) -> int:
    return int(round(v * S / 1024))


def draw(size: int = 1024) -> Image.Image:
    img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    m = _scale(48)
    d.rounded_rectangle((m, m, S - m, S - m), radius=_scale(200), fill=TILE, outline=TILE_EDGE, width=_scale(14))

    # a body cross-section: an ellipse with a lighter rim
    d.ellipse((_scale(150), _scale(250), _scale(874), _scale(830)), fill=BODY, outline=BODY_EDGE, width=_scale(22))

    # the mask: an organic blob (union of ellipses, blurred and re-thresholded for a smooth outline)
    blob = Image.new("L", (S, S), 0)
    b = ImageDraw.Draw(blob)
    for box in ((330, 380, 640, 640), (470, 330, 700, 560), (360, 520, 560, 700), (560, 470, 690, 640)):
        b.ellipse(tuple(_scale(v) for v in box), fill=255)
    blob = blob.filter(ImageFilter.GaussianBlur(_scale(28))).point(lambda v: 255 if v >= 128 else 0)
    edge = blob.filter(ImageFilter.MaxFilter(2 * (_scale(10) // 2) + 1))
    img.paste(Image.new("RGBA", (S, S), MASK_EDGE), (0, 0), edge)
    img.alpha_composite(Image.composite(Image.new("RGBA", (S, S), MASK), Image.new("RGBA", (S, S), (0, 0, 0, 0)),
                                        blob))

    # the prompt box around the blob, with corner handles
    x0, y0, x1, y1 = (_scale(v) for v in (270, 270, 760, 760))
    d = ImageDraw.Draw(img)
    d.rectangle((x0, y0, x1, y1), outline=BOX, width=_scale(34))
    h = _scale(44)
    for cx, cy in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        d.rectangle((cx - h, cy - h, cx + h, cy + h), fill=BOX)
    return img.resize((size, size), Image.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    big = draw(1024)
    big.resize((512, 512), Image.LANCZOS).save(OUT / "boxseg.png", optimize=True)
    big.save(OUT / "boxseg.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    big.save(OUT / "boxseg.icns")
    for name in ("boxseg.png", "boxseg.ico", "boxseg.icns"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
