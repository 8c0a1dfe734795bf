#!/usr/bin/env python3
"""Writes tests/fixtures/pil_resize/: small RGB inputs and PIL's 224×224 BILINEAR resizes of them.

crates/incept-extract/tests/resize.rs checks that incept's resize_bilinear equals
PIL's Image.resize((224, 224), Image.BILINEAR) byte for byte on these files.

Made with Pillow 13.0.0 (pinned: the script refuses another version, so the fixture's provenance
is one known resampler). The inputs come from a fixed integer hash, not a random generator, so
they are the same on every machine and Python. To rerun it:

    python3 -m pip install --target /tmp/pillow pillow==13.0.0
    PYTHONPATH=/tmp/pillow python3 models/make_resize_fixture.py [OUTPUT_DIR]

Files, each an 8-bit RGB PNG (NAME_in.png the input, NAME_out.png PIL's 224×224 resize):
- down_256x240: both axes shrink (by 8/7 and 15/14), as the 256×256 photos do, non-square so a
  swapped axis shows;
- mixed_300x160: x shrinks, y grows;
- up_37x23: both axes grow by large, unequal factors.
"""

import sys
from pathlib import Path

PILLOW_VERSION = "13.0.0"
INSTALL = (
    f"install it with `python3 -m pip install --target /tmp/pillow pillow=={PILLOW_VERSION}` "
    "and put /tmp/pillow on PYTHONPATH"
)

try:
    import PIL
    from PIL import Image
except ImportError:
    sys.exit(f"make_resize_fixture: Pillow not found; {INSTALL}")

SIZE = (224, 224)
INPUTS = {"down_256x240": (256, 240), "mixed_300x160": (300, 160), "up_37x23": (37, 23)}


def noise(x: int, y: int, channel: int) -> int:
    """A 32-bit integer hash of a position: deterministic, uniform-looking bits."""
    h = (x * 0x9E3779B1 ^ y * 0x85EBCA77 ^ channel * 0xC2B2AE3D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return h


def pixel(x: int, y: int, width: int, height: int) -> tuple[int, int, int]:
    """High-contrast content: black/white noise, hard edges, saturated colours and a gradient.

    The image is cut into 8×8 cells; a cell is pixel noise of 0 and 255 (every channel
    independent; a quarter of the cells), a flat saturated colour (half) or a diagonal gradient
    (a quarter), chosen by the cell's hash.
    Flat and gradient cells keep the PNGs small; noise and cell edges stress the filter weights.
    """
    kind = noise(x // 8, y // 8, 7) % 4
    if kind == 0:
        return tuple(255 if noise(x, y, c) & 1 else 0 for c in range(3))
    if kind in (1, 2):
        bits = noise(x // 8, y // 8, 11)
        return tuple(255 if bits >> c & 1 else 0 for c in range(3))
    level = (x * 255 // max(width - 1, 1) + y * 255 // max(height - 1, 1)) // 2
    return (level, 255 - level, (level * 3) % 256)


def make_input(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata([pixel(x, y, width, height) for y in range(height) for x in range(width)])
    return image


def main() -> int:
    if PIL.__version__ != PILLOW_VERSION:
        print(
            f"make_resize_fixture: Pillow {PIL.__version__} found, the fixture is pinned to "
            f"{PILLOW_VERSION}; {INSTALL}",
            file=sys.stderr,
        )
        return 1
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/pil_resize")
    output.mkdir(parents=True, exist_ok=True)
    for name, (width, height) in INPUTS.items():
        source = make_input(width, height)
        resized = source.resize(SIZE, Image.BILINEAR)
        assert resized.mode == "RGB" and resized.size == SIZE
        source.save(output / f"{name}_in.png", optimize=True)
        resized.save(output / f"{name}_out.png", optimize=True)
        print(f"{name}: {width}x{height} -> {SIZE[0]}x{SIZE[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
