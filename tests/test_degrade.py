import pytest
import torch

from nac_hash.training.augment import augment
from nac_hash.training.config import AugmentConfig, TrainConfig
from nac_hash.training.degrade import EDITS, blur, degrade, jpeg, rescale, rotate, strip


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(n: int = 8, size: int = 32) -> torch.Tensor:
    """Gradients with a per-image tilt: content a JPEG keeps almost exactly."""
    ramp = torch.linspace(0, 1, size)
    tilt = torch.rand(n, 3, 1, 1, generator=generator(1))
    return (0.2 + 0.6 * tilt * (ramp[None, :] + ramp[:, None]) / 2).expand(n, 3, size, size).contiguous()


def checkerboard(n: int = 4, size: int = 32) -> torch.Tensor:
    cells = (torch.arange(size)[:, None] + torch.arange(size)[None, :]) % 2
    return cells.float().expand(n, 3, size, size).contiguous()


def total_variation(images: torch.Tensor) -> float:
    return float(images.diff(dim=-1).abs().mean() + images.diff(dim=-2).abs().mean())


@pytest.mark.parametrize("edit", EDITS, ids=lambda edit: edit.__name__)
def test_each_edit_keeps_shape_and_range_and_changes_the_image(edit):
    x = torch.rand(6, 3, 32, 32, generator=generator())
    out = edit(x, generator()).clamp(0, 1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x, atol=1e-3)


def test_blur_and_rescale_smooth_fine_detail_and_keep_flat_images():
    board, flat = checkerboard(), torch.full((4, 3, 32, 32), 0.5)
    for edit in (blur, rescale):
        assert total_variation(edit(board, generator())) < 0.6 * total_variation(board)
        assert torch.allclose(edit(flat, generator()), flat, atol=1e-5)


def test_rotation_keeps_the_centre_and_blackens_a_corner_when_it_turns():
    flat = torch.full((64, 3, 32, 32), 0.5)
    out = rotate(flat, generator())
    assert torch.allclose(out[:, :, 14:18, 14:18], flat[:, :, 14:18, 14:18], atol=1e-5)
    assert (out[:, :, 0, 0] < 0.4).float().mean() > 0.5  # most angles move the corner off the source


def test_jpeg_keeps_smooth_images_close():
    x = smooth_images()
    error = (jpeg(x, generator()) - x).abs().mean()
    assert 0 < error < 0.03


def test_strip_paints_one_bar_of_a_caption_size():
    x = torch.zeros(200, 3, 32, 32)
    changed = (strip(x, generator()) != x).any(1)  # (N, S, S)
    area = changed.float().mean(dim=(1, 2))
    assert area.max() <= (6 / 32) * (24 / 32) + 1e-6  # at most 1/6 of the height by 3/4 of the width, rounded up
    rows, columns = changed.any(2), changed.any(1)
    assert torch.equal(changed.sum(dim=(1, 2)), rows.sum(1) * columns.sum(1))  # a solid rectangle
    assert (area > 0).float().mean() > 0.95  # a random colour on black is almost never black


def test_degrade_is_off_at_zero_and_seeded():
    x = torch.rand(16, 3, 32, 32, generator=generator())
    assert degrade(x, 0.0, generator()) is x
    a, b = degrade(x, 0.5, generator(3)), degrade(x, 0.5, generator(3))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_augment_applies_the_edits_it_is_asked_for():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=generator())
    plain = AugmentConfig(crop_scale_min=1.0, crop_ratio=(1.0, 1.0), mirror_probability=0.0,
                          jitter_probability=0.0, grayscale_probability=0.0)
    edited = AugmentConfig(**{**plain.__dict__, "degrade_probability": 1.0})
    assert torch.allclose(augment(x, plain, generator()), x.float() / 255, atol=1e-4)
    out = augment(x, edited, generator())
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x.float() / 255, atol=1e-2)


def test_train_config_rejects_a_probability_outside_zero_to_one():
    with pytest.raises(ValueError, match="degrade_probability"):
        TrainConfig(degrade_probability=1.5)
    assert TrainConfig(degrade_probability=0.3).augment_config().degrade_probability == 0.3
