"""Object colours: the default colour of each label value."""

from __future__ import annotations

#: default object colours (RGB 0..255), in label order; the first ones follow 3D Slicer's
#: GenericColors table so that exports look familiar
PALETTE = [(128, 174, 128), (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79), (221, 130, 101),
           (144, 238, 144), (192, 104, 88), (220, 245, 20), (78, 63, 0), (255, 250, 220), (230, 220, 70),
           (200, 200, 235), (250, 250, 210), (244, 214, 49), (0, 151, 206)]


def default_color(value: int) -> tuple[int, int, int]:
    """RGB 0..255 of label ``value`` (1, 2, ...), cycling through :data:`PALETTE`."""
    return PALETTE[(int(value) - 1) % len(PALETTE)]


__all__ = ["PALETTE", "default_color"]
