import numpy as np
import pytest
import torch

from nac_hash.codes import hamming_distance, pack_bits, pack_codes, to_bits, unpack_bits, validate_bits


def popcount_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[sum(bin(x ^ y).count("1") for x, y in zip(qa, db, strict=True)) for db in b] for qa in a])


def test_bit_order_is_most_significant_first():
    bits = np.zeros((1, 16), np.uint8)
    bits[0, 0] = 1  # bit 0 -> byte 0, value 128
    bits[0, 15] = 1  # bit 15 -> byte 1, value 1
    assert pack_bits(bits).tolist() == [[128, 1]]


def test_sign_convention_zero_is_negative():
    a = torch.tensor([[0.5, 0.0, -0.1, 2.0] * 4])
    assert to_bits(a)[0, :4].tolist() == [1, 0, 0, 1]
    assert pack_codes(a).shape == (1, 2)


@pytest.mark.parametrize("bits", [16, 24, 64, 128, 256])
def test_pack_unpack_round_trip(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2, (7, bits), dtype=np.uint8)
    assert np.array_equal(unpack_bits(pack_bits(codes)), codes)


@pytest.mark.parametrize("bits", [16, 24, 128])
def test_hamming_matches_popcount_reference(bits):
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (5, bits // 8), dtype=np.uint8)
    d = rng.integers(0, 256, (9, bits // 8), dtype=np.uint8)
    assert np.array_equal(hamming_distance(q, d), popcount_reference(q, d))


def test_hamming_extremes_and_shape_errors():
    zeros, ones = np.zeros((1, 16), np.uint8), np.full((1, 16), 255, np.uint8)
    assert hamming_distance(zeros, ones)[0, 0] == 128
    assert hamming_distance(ones, ones)[0, 0] == 0
    with pytest.raises(ValueError):
        hamming_distance(zeros, np.zeros((1, 8), np.uint8))


@pytest.mark.parametrize("bad", [8, 12, 100, 264, 0])
def test_code_length_validation(bad):
    with pytest.raises(ValueError):
        validate_bits(bad)
