"""The mirror-invariant DCT hash and the copy models that append it to their learned codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.fft import dctn

from nac_hash.checkpoint import CheckpointError, checkpoint_paths, export_checkpoint, load_checkpoint, save_checkpoint
from nac_hash.codes import hamming_distance
from nac_hash.inference import code_logits, encode_images
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel
from nac_hash.perceptual import DCT_SIZE, MirrorInvariantDCTHash, mirror_invariant_frequencies
from nac_hash.transforms import model_input

CONFIG = ModelConfig(arch="cnn_small", width=4, bits=32)


def smooth_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 images with structure at several scales, none of them symmetric."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((size, size),
                                                                                        Image.Resampling.BICUBIC)
        images.append(np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3)))
    return np.clip(np.stack(images), 0, 255).astype(np.uint8)


def hash_scores(images: np.ndarray, bits: int = 64) -> np.ndarray:
    hasher = MirrorInvariantDCTHash(bits, CONFIG.mean, CONFIG.std)
    return hasher(model_input(torch.from_numpy(images).permute(0, 3, 1, 2), CONFIG)).numpy()


def test_scores_are_scipys_dct_of_the_grayscale_image_less_their_median():
    images = smooth_images(3)
    gray = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    frequencies = mirror_invariant_frequencies(64)
    for scores, image in zip(hash_scores(images), gray, strict=True):
        spectrum = dctn(image, norm="ortho")
        expected = np.array([spectrum[u, v] for u, v in frequencies])
        np.testing.assert_allclose(scores, expected - np.median(expected), atol=1e-4)


def test_frequencies_are_even_across_lowest_first_and_skip_the_constant():
    frequencies = mirror_invariant_frequencies(64)
    assert len(set(frequencies)) == 64 and (0, 0) not in frequencies
    assert all(v % 2 == 0 for _, v in frequencies)
    assert max(max(pair) for pair in frequencies) < DCT_SIZE // 2  # low frequencies only


def test_a_mirror_keeps_the_code_and_other_images_do_not():
    images = smooth_images(20)
    codes = np.packbits(hash_scores(images) > 0, axis=1)
    mirrored = np.packbits(hash_scores(images[:, :, ::-1].copy()) > 0, axis=1)
    np.testing.assert_array_equal(codes, mirrored)
    distances = hamming_distance(codes, codes)
    assert distances[~np.eye(20, dtype=bool)].min() >= 8  # distinct images stay apart
    assert (np.packbits(hash_scores(images) > 0, axis=1).sum(1) > 0).all()


def test_half_the_bits_are_set_and_resizing_barely_moves_them():
    images = smooth_images(10, seed=1, size=96)
    small = np.stack([np.asarray(Image.fromarray(i).resize((32, 32), Image.Resampling.BILINEAR)) for i in images])
    smaller = np.stack([np.asarray(Image.fromarray(i).resize((48, 48), Image.Resampling.BILINEAR).resize(
        (32, 32), Image.Resampling.BILINEAR)) for i in images])
    scores = hash_scores(small)
    assert ((scores > 0).sum(1) == 32).all()  # the median splits the 64 scores in halves
    codes, resized = np.packbits(scores > 0, axis=1), np.packbits(hash_scores(smaller) > 0, axis=1)
    assert np.diag(hamming_distance(codes, resized)).max() <= 6


def test_copy_model_codes_end_with_the_perceptual_bits(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(HashingModel(CONFIG), tmp_path / "learned.safetensors")
    export_checkpoint(tmp_path / "learned.safetensors", tmp_path / "copies.safetensors", perceptual_bits=64)
    learned, _ = load_checkpoint(tmp_path / "learned.safetensors")
    copies, sidecar = load_checkpoint(tmp_path / "copies.safetensors")
    assert sidecar["model"]["perceptual_bits"] == 64 and copies.config.code_bits == 96
    images = smooth_images(6)
    codes = encode_images(copies, images)
    assert codes.shape == (6, 12)
    np.testing.assert_array_equal(codes[:, :4], encode_images(learned, images))
    np.testing.assert_array_equal(codes[:, 4:], np.packbits(hash_scores(images) > 0, axis=1))
    assert code_logits(copies, images).shape == (6, 96)


def test_code_lengths_are_checked():
    with pytest.raises(ValueError, match="multiple of 8"):
        ModelConfig(bits=128, perceptual_bits=12)
    with pytest.raises(ValueError, match="256"):
        ModelConfig(bits=256, perceptual_bits=64)


def test_packaged_models_are_found_by_name_unless_a_file_has_it(tmp_path, monkeypatch):
    assert checkpoint_paths("copies")[0].parent.name == "assets"
    assert load_checkpoint("copies")[0].config.perceptual_bits > 0
    assert load_checkpoint("default")[0].config.perceptual_bits == 0
    monkeypatch.chdir(tmp_path)
    save_checkpoint(HashingModel(CONFIG), tmp_path / "copies.safetensors")
    assert checkpoint_paths("copies")[0].resolve() == tmp_path / "copies.safetensors"
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint("no-such-model")
