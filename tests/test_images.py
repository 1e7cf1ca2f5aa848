"""Decoding with limits: every kind of bad file becomes InvalidImageError with a reason."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageOps

from nac_hash.images import InvalidImageError, centre_square, decode_image, list_images, square_image


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_formats_decode_to_square_rgb(fmt):
    image = Image.fromarray(np.full((40, 60, 3), 120, np.uint8))
    pixels = decode_image(encoded(image, fmt), 32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert abs(int(pixels.mean()) - 120) <= 3


def test_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixels = decode_image(data, 16)
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"this is a text file, not a picture", "not a readable image"),
    (encoded(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:300], "truncated"),
])
def test_bad_bytes_are_rejected_with_a_reason(data, reason):
    with pytest.raises(InvalidImageError, match=reason):
        decode_image(data, 32)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_rejected_before_decoding():
    bomb = encoded(Image.new("1", (12_000, 12_000)), "PNG")  # 144 M pixels in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(InvalidImageError, match="more than the limit"):
        decode_image(bomb, 32)


def test_byte_limit():
    data = encoded(Image.new("RGB", (64, 64)), "PNG")
    with pytest.raises(InvalidImageError, match="bytes"):
        decode_image(data, 32, max_bytes=len(data) - 1)


def test_list_images_is_recursive_and_ignores_case(tmp_path):
    for name in ["a.JPG", "sub/b.png", "sub/deeper/c.WebP", "notes.txt", "sub/d.jpeg.bak"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a.JPG", "sub/b.png", "sub/deeper/c.WebP"]


@pytest.mark.parametrize(("width", "height"), [(1, 300_000), (1, 5_000_000), (300_000, 1), (33, 1)])
def test_thin_strips_are_refused_from_the_header(width, height):
    """A 661-byte PNG of 1 x 300,000 pixels once cost 2.3 GB: the shorter side was scaled up before cropping."""
    data = encoded(Image.new("L", (width, height)), "PNG")
    started = time.perf_counter()
    with pytest.raises(InvalidImageError, match="times longer"):
        decode_image(data, 32)
    assert time.perf_counter() - started < 1.0  # generous: refusing reads only the header


def test_the_centred_square_is_resized_not_the_whole_image():
    pixels = np.zeros((64, 2048, 3), np.uint8)  # 32:1, the longest shape accepted
    pixels[:, 960:1088] = 255  # white around the centre square of 64 x 64, black further out
    assert decode_image(encoded(Image.fromarray(pixels), "PNG"), 32).min() == 255


def test_large_jpegs_decode_reduced_to_nearly_the_same_pixels():
    gradient = np.linspace(0, 255, 2400, dtype=np.float32)
    pixels = np.stack([np.add.outer(gradient[:1600] / 2, gradient / 2)] * 3, axis=-1).astype(np.uint8)
    data = encoded(Image.fromarray(pixels), "JPEG", quality=90)
    full = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR,
                                                     box=(400, 0, 2000, 1600)), dtype=np.int16)
    assert np.abs(decode_image(data, 32).astype(np.int16) - full).max() <= 4


def with_orientation(image: Image.Image, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encoded(image, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_photos_decode_upright_as_their_exif_orientation_says(fmt):
    # An off-centre bright block on a gradient: each of the eight orientations puts it somewhere else.
    pixels = np.repeat(np.linspace(0, 120, 640, dtype=np.uint8)[None, :, None], 480, 0).repeat(3, 2)
    pixels[60:180, 200:300] = 255  # 640 x 480 is large enough for a JPEG's reduced (draft) decode
    image = Image.fromarray(pixels)
    upright = {k: square_image(ImageOps.exif_transpose(Image.open(io.BytesIO(with_orientation(image, k, "PNG")))),
                               32).astype(np.int16) for k in range(1, 9)}
    for orientation in range(1, 9):
        decoded = decode_image(with_orientation(image, orientation, fmt), 32).astype(np.int16)
        errors = {k: np.abs(decoded - expected).mean() for k, expected in upright.items()}
        assert min(errors, key=errors.get) == orientation and errors[orientation] < 3


def png_rgba16(width: int, height: int) -> bytes:
    """A 16-bit RGBA PNG of zeros (PIL cannot write one): a few bytes a row once compressed."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"".join(b"\0" + bytes(8 * width) for _ in range(height)), 9)
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def valid_images() -> list[bytes]:
    """Small files of every documented format, of several modes, and of formats that are refused."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    documented = [encoded(image, fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP")]
    modes = [encoded(image.convert(mode), "PNG") for mode in ("1", "L", "LA", "P", "RGBA", "I;16")]
    lossless = [encoded(image.convert("RGBA"), "WEBP", lossless=True), png_rgba16(40, 24)]
    refused = [encoded(image, fmt) for fmt in ("TIFF", "PPM", "ICO")]
    return documented + modes + lossless + refused


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(valid_images()), edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8), cut=st.integers(0, 10_000))
def test_mutated_files_decode_or_raise_invalid_image(source, edits, cut):
    """Fuzz: flipped bytes and truncations give an image of the right shape or InvalidImageError, nothing else."""
    data = bytearray(source[: max(1, len(source) - cut)])
    for position, value in edits:
        data[position % len(data)] = value
    try:
        pixels = decode_image(bytes(data), 16)
    except InvalidImageError:
        return
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8


def test_strip_bombs_cost_little_memory_in_every_path(tmp_path):
    """In a fresh process: 256 strips of 1 x 300,000 pixels through the decoder the indexer and the service use,
    and one through the training loader, raise the peak memory by less than 50 MB (each once cost 2.3 GB)."""
    code = """
import io, resource, sys
from pathlib import Path
from PIL import Image
from nac_hash.images import InvalidImageError, decode_image
from nac_hash.training.datasets import load_image_folder
buffer = io.BytesIO()
Image.new("L", (1, 300_000)).save(buffer, format="PNG")
strip = buffer.getvalue()
root = Path(sys.argv[1])
(root / "a").mkdir(parents=True)
(root / "a" / "strip.png").write_bytes(strip)
Image.new("RGB", (32, 32)).save(root / "a" / "fine.png")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(256):
    try:
        decode_image(strip, 32)
    except InvalidImageError:
        pass
data = load_image_folder(root, 32)
assert len(data.images) == 1 and "times longer" in data.skipped[0][1], data.skipped
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "images")], capture_output=True, text=True,
                            check=True)
    assert float(result.stdout.strip().splitlines()[-1]) < 50


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "1"])
@pytest.mark.parametrize("shape", [(500, 400), (97, 300), (33, 33), (2000, 150)])
def test_resizing_before_converting_keeps_the_pixels(mode, shape):
    """square_image resizes RGB and grayscale images as they are: the very pixels of converting first."""
    rng = np.random.default_rng(sum(shape))
    image = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).convert(mode)
    converted = image.convert("RGB")
    expected = converted.resize((32, 32), Image.Resampling.BILINEAR, box=centre_square(*converted.size),
                                reducing_gap=3.0)
    np.testing.assert_array_equal(square_image(image, 32), np.asarray(expected))


def test_bombs_under_the_pixel_limit_are_refused_from_the_header():
    """Images under the 50 MP limit whose decoding would cost hundreds of MB: each refused before decoding."""
    bombs = {
        "lossless WebP 7000 x 7000": encoded(Image.new("RGB", (7000, 7000)), "WEBP", lossless=True),
        "1-bit PNG 7000 x 7000": encoded(Image.new("1", (7000, 7000)), "PNG"),
        "1-bit PNG 1250 x 40000": encoded(Image.new("1", (1250, 39_999)), "PNG"),
        "RGBA16 PNG 4000 x 4000": png_rgba16(4000, 4000),
    }
    for name, data in bombs.items():
        assert len(data) < 400_000, name
        with pytest.raises(InvalidImageError, match=r"pixels a byte|to decode"):
            decode_image(data, 32, max_decoded_bytes=32 * 2**20)
    decode_image(png_rgba16(1000, 1000), 32, max_decoded_bytes=32 * 2**20)  # small enough: decoded


@pytest.mark.parametrize("fmt", ["TIFF", "PPM", "ICO", "TGA"])
def test_only_the_documented_formats_decode(fmt):
    with pytest.raises(InvalidImageError, match="formats read are BMP, GIF, JPEG, PNG, WEBP"):
        decode_image(encoded(Image.new("RGB", (40, 40), (9, 99, 199)), fmt), 32)
