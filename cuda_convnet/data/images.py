"""Decode one image file to RGB uint8 and apply the paper's fixed-size rescale (§2).

§2: "Given a rectangular image, we first rescaled the image such that the shorter side
was of length 256, and then cropped out the central 256x256 patch from the resulting
image."  `load_fixed_size` does exactly that for one file; `prepare.py` maps it over a
tree in worker processes.

Choices the paper leaves open, stated once here:

- Resampling: Pillow's antialiased BICUBIC.  The rescale and the centre crop are done
  in one resample, `Image.resize(size, box=...)`, whose box is the central short x short
  square of the source in continuous coordinates.  That is the exact geometry of
  "rescale, then take the centre" without rounding the rescaled long side to an integer
  first, and it resamples only the pixels that are kept.
- JPEG draft mode: for JPEGs at least twice the target size, libjpeg is asked to decode
  at 1/2, 1/4 or 1/8 scale (DCT-domain downscaling, `Image.draft`), never below the
  target size.  This is several times faster on large photos; the antialiased resize
  that follows removes any visible difference.
- Colour: every mode is converted to RGB.  Grayscale is replicated, CMYK (including
  Adobe's inverted CMYK JPEGs, which Pillow handles) is converted by Pillow, palette
  images are expanded, and images with transparency are composited over white (what a
  viewer shows on a white page; the colour under alpha=0 is undefined and often black).
  16-bit grayscale is scaled to 8 bits.
- EXIF orientation is applied (`PIL.ImageOps.exif_transpose`): a phone photo stored
  sideways with an Orientation tag of 6 is turned upright before the rescale, as every
  image viewer shows it.  `prepare` (training images) and `predict` (the user's files)
  both decode through `load_fixed_size`, so the two always agree.
- The format is sniffed from the content, not the name: a PNG named .JPEG decodes.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

# Pillow >= 9.1 names filters Image.Resampling.X; older ones Image.X.
_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC

# File names considered images when scanning a tree (case-insensitive).  The content
# decides the decoder; the extension only decides what to try.
IMAGE_EXTENSIONS = frozenset(
    {".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
)

# Pillow refuses "decompression bombs" over ~179 MP by default.  ImageNet has a few very
# large photos but none near that; keep Pillow's guard (a bomb is reported as skipped).

# Pillow's own decoder errors are a mix of OSError, SyntaxError, ValueError etc.; any
# exception while decoding a single file means "this file is unusable", never a crash.


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image to mode RGB (see the module docstring for the rules)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: Pillow's convert("L") clips instead of
        # scaling, so scale to 8 bits here.
        a = np.asarray(img).astype(np.float64)
        a = np.clip(np.round(a * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if img.mode == "F":
        a = np.clip(np.round(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def center_square_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The central short x short square of a width x height image, as a Pillow box.

    Rescaling by 256/short and cropping the central 256x256 keeps exactly this square of
    the source (in continuous pixel coordinates; it may start at a half pixel).
    """
    short = min(width, height)
    x0 = (width - short) / 2.0
    y0 = (height - short) / 2.0
    return (x0, y0, x0 + short, y0 + short)


def load_fixed_size(path: str | os.PathLike, size: int = 256) -> np.ndarray:
    """Decode `path`, rescale shorter side to `size`, take the central size x size (§2).

    The one decoder of the package: `prepare` and `predict` both call it, so a file is
    seen the same way in training and in use.  EXIF orientation is applied first.
    Returns a C-contiguous uint8 array (size, size, 3), RGB.  Raises whatever Pillow
    raises for an unreadable or corrupt file (the caller records and skips it).
    """
    with Image.open(path) as img:
        # Draft: let libjpeg decode at a reduced scale when the image is >= 2x the
        # target on both sides (no-op for other formats).  Requested size (size, size)
        # guarantees the shorter side stays >= size.
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        img.load()  # force the full decode now: truncated files fail here, inside `with`
        # Orientation: the draft above asked for both sides >= size, which a rotation by
        # 90 degrees keeps true, so the transpose may come after it.
        upright = ImageOps.exif_transpose(img)
        rgb = to_rgb(upright)
        box = center_square_box(*rgb.size)
        out = rgb.resize((size, size), _BICUBIC, box=box)
        arr = np.asarray(out, dtype=np.uint8)
    if arr.shape != (size, size, 3):  # defensive: Pillow should never give anything else
        raise ValueError(f"{path}: decoded to shape {arr.shape}, expected {(size, size, 3)}")
    return np.ascontiguousarray(arr)
