"""Reading image files safely: which files count as images, and decoding with limits.

One decoder for training data, the indexer and the service, so that every path treats a corrupt file,
a truncated file or a decompression bomb the same way: :class:`InvalidImageError` with a clear reason.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
# Below PIL's own warning threshold (about 89 M pixels), so our limit is the one that applies.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 2**20
# Wider than any panorama; a thin strip of a few hundred bytes that decodes into millions of pixels is refused.
MAX_ASPECT_RATIO = 32
# JPEGs decode at a DCT scale of 1/2 to 1/8 (PIL's draft mode) while still at least this many times the
# model's input size, which keeps the final bilinear resize free of aliasing.
DRAFT_OVERSAMPLING = 2
# Other formats decode whole. Beyond FREE_PIXELS, an image may not hold more pixels per byte of file than
# any photograph or drawing does: a 34-byte WebP or a 6 KB 1-bit PNG of 7000 x 7000 pixels is a bomb.
FREE_PIXELS = 4_000_000
MAX_PIXELS_PER_BYTE = 256
# The formats documented (IMAGE_EXTENSIONS), as PIL's openers name them, with the extension a file of each gets;
# PIL's JPEG opener also reads MPO, the JPEG variant some cameras write.
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
DECODED_FORMATS = tuple(sorted(FORMAT_EXTENSIONS))


class InvalidImageError(ValueError):
    """A file or upload is not a readable image within the size limits."""


# EXIF orientation -> the transpose that shows the pixels as a viewer does (the table of ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation: 1 upright (also where the tag is absent), 2 to 8 mirrored or turned.

    Cameras and phones store a portrait photo's pixels sideways and set this tag; viewers turn the photo.
    """
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except (OSError, ValueError, TypeError, SyntaxError):  # a damaged EXIF block leaves the pixels as stored
        return 1


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` flipped or turned as EXIF ``orientation`` says."""
    return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the largest centred square of a width x height image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


# Modes resized before they are converted to RGB, with the very pixels of converting first (L's one channel is
# each of RGB's three). Other modes (alpha is dropped, palettes are looked up) are converted at full size.
RESIZED_AS_THEY_ARE = frozenset({"RGB", "L"})


def square_image(image: Image.Image, size: int, orientation: int = 1) -> np.ndarray:
    """Any PIL image -> (size, size, 3) uint8 RGB: the centred square, resized to ``size`` (bilinear), then
    turned upright as EXIF ``orientation`` says.

    Cropping before resizing keeps every allocation within the source and the output: resizing the shorter
    side first would scale a 1 x 300,000 image up to 32 x 9,600,000. ``reducing_gap`` lets PIL shrink a large
    image by an integer factor with a box filter before the bilinear pass, so each source pixel is read once.
    RGB and grayscale images are resized as they are, without a full-size converted copy.
    The centred square and the resize commute with flips and quarter turns, so turning the small square
    gives the pixels of turning the whole photo first, at a tiny fraction of the cost.
    """
    if image.mode not in RESIZED_AS_THEY_ARE:
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=centre_square(*image.size),
                             reducing_gap=3.0)
    return np.asarray(upright(image.convert("RGB"), orientation), dtype=np.uint8)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursively, extension in any letter case), in sorted path order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))


def check_dimensions(width: int, height: int, max_pixels: int) -> None:
    """Refuse sizes whose decoding would cost more than ``max_pixels`` or whose shape is a degenerate strip."""
    if width < 1 or height < 1:
        raise InvalidImageError(f"image has {width}x{height} pixels")
    if width * height > max_pixels:
        raise InvalidImageError(f"image has {width}x{height} pixels, more than the limit of {max_pixels:,}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(f"image of {width}x{height} pixels is more than {MAX_ASPECT_RATIO} times longer "
                                "than it is wide")


def decoded_bytes(image: Image.Image) -> int:
    """The memory PIL takes to decode ``image`` and bring it to RGB: 1 byte a pixel for 1, L and P, 2 for I;16,
    else 4, plus 4 for the full-size RGB copy of a mode that is not resized as it is (square_image)."""
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    converted = 0 if image.mode in RESIZED_AS_THEY_ARE else 4
    return image.width * image.height * (per_pixel + converted)


def check_decode_cost(image: Image.Image, file_bytes: int, max_decoded_bytes: int | None) -> None:
    """Refuse an image whose decoding (at the size it will be decoded, after any draft) would cost more than
    its file justifies, or more than ``max_decoded_bytes`` of memory."""
    pixels = image.width * image.height
    if image.format not in ("JPEG", "MPO") and pixels > max(FREE_PIXELS, MAX_PIXELS_PER_BYTE * file_bytes):
        raise InvalidImageError(f"image of {image.width}x{image.height} pixels in {file_bytes:,} bytes: more "
                                f"than {MAX_PIXELS_PER_BYTE} pixels a byte, as only decompression bombs are")
    if max_decoded_bytes is not None and decoded_bytes(image) > max_decoded_bytes:
        raise InvalidImageError(f"image of {image.width}x{image.height} pixels ({image.mode}) would take "
                                f"{decoded_bytes(image):,} bytes to decode, more than the limit of "
                                f"{max_decoded_bytes:,}")


def decode_image(data: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_decoded_bytes: int | None = None) -> np.ndarray:
    """Encoded image bytes -> (size, size, 3) uint8 RGB (first frame of animations), upright as its EXIF
    orientation says. Everything is checked from the header, before any pixel is decoded: the format, the
    size, and the cost of decoding (:func:`check_decode_cost`).

    Raises:
        InvalidImageError: empty, too large, too costly to decode, not an image of a documented format,
            corrupt or truncated.
    """
    if not data:
        raise InvalidImageError("empty file")
    if len(data) > max_bytes:
        raise InvalidImageError(f"file has {len(data):,} bytes, more than the limit of {max_bytes:,}")
    try:
        with Image.open(io.BytesIO(data), formats=DECODED_FORMATS) as image:
            check_dimensions(*image.size, max_pixels)
            image.seek(0)
            if image.format in ("JPEG", "MPO"):
                scale = DRAFT_OVERSAMPLING * size / min(image.size)
                image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            check_decode_cost(image, len(data), max_decoded_bytes)
            return square_image(image, size, exif_orientation(image))
    except InvalidImageError:
        raise
    except UnidentifiedImageError as e:
        raise InvalidImageError("not a readable image: unknown format or corrupt header (the formats read are "
                                f"{', '.join(sorted(FORMAT_EXTENSIONS))})") from e
    except Image.DecompressionBombError as e:
        raise InvalidImageError(f"not a readable image: {e}") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidImageError(f"corrupt or truncated image: {e}") from e


def image_extension(data: bytes) -> str:
    """The file name extension of the format the bytes are in (from the header, not from any client name)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidImageError("not a readable image: unknown format or corrupt header") from e
    if fmt not in FORMAT_EXTENSIONS:
        raise InvalidImageError(f"unsupported image format {fmt}; use one of {', '.join(FORMAT_EXTENSIONS)}")
    return FORMAT_EXTENSIONS[fmt]


def read_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the file at ``path``; a file over ``max_bytes`` is refused before it is read."""
    file_size = path.stat().st_size
    if file_size > max_bytes:
        raise InvalidImageError(f"file has {file_size:,} bytes, more than the limit of {max_bytes:,}")
    return path.read_bytes()


def read_image(path: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode the image file at ``path`` with :func:`decode_image` (the size limit is checked before reading)."""
    return decode_image(read_file(path, max_bytes), size, max_pixels, max_bytes)
