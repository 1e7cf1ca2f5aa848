"""Decoding with limits: every kind of bad file becomes InvalidImageError with a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nac_hash.images import InvalidImageError, decode_image, list_images


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
