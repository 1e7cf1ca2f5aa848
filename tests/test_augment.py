import pytest
import torch

from nac_hash.training.augment import (
    COLOUR_ADJUSTMENTS,
    CompiledOnCpu,
    augment,
    compiled_shift_hue,
    crop_boxes,
    hsv_to_rgb,
    resized_crop,
    rgb_to_hsv,
    shift_hue,
)
from nac_hash.training.config import AugmentConfig, TrainConfig
from nac_hash.training.train import two_views


def images(n: int = 6, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_identity_settings_give_the_image_back():
    config = AugmentConfig(crop_scale_min=1.0, crop_ratio=(1.0, 1.0), mirror_probability=0.0,
                           jitter_probability=0.0, grayscale_probability=0.0)
    x = images()
    assert torch.allclose(augment(x, config), x.float() / 255, atol=1e-4)


def test_flip_mirrors_the_image():
    config = AugmentConfig(crop_scale_min=1.0, crop_ratio=(1.0, 1.0), mirror_probability=1.0,
                           jitter_probability=0.0, grayscale_probability=0.0)
    x = images()
    assert torch.allclose(augment(x, config), (x.float() / 255).flip(-1), atol=1e-4)


def test_grayscale_gives_equal_channels():
    config = AugmentConfig(grayscale_probability=1.0)
    out = augment(images(), config)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(out[:, 1], out[:, 2], atol=1e-6)


def test_output_shape_range_and_seeded_determinism():
    config = AugmentConfig(size=24)
    a = augment(images(), config, torch.Generator().manual_seed(5))
    b = augment(images(), config, torch.Generator().manual_seed(5))
    c = augment(images(), config, torch.Generator().manual_seed(6))
    assert a.shape == (6, 3, 24, 24) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_boxes_respect_scale_and_image_bounds():
    boxes = crop_boxes(2000, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), torch.device("cpu"),
                       torch.Generator().manual_seed(0))
    cx, cy, w, h = boxes.unbind(1)
    area = w * h / (32 * 32)
    assert (area >= 0.08 - 1e-4).all() and (area <= 1 + 1e-4).all()
    assert (cx - w / 2 >= -1e-4).all() and (cx + w / 2 <= 32 + 1e-4).all()
    assert (cy - h / 2 >= -1e-4).all() and (cy + h / 2 <= 32 + 1e-4).all()


def test_hsv_round_trip():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)


@pytest.mark.parametrize("hue_shift", [shift_hue, compiled_shift_hue])
def test_hue_shift_matches_torchvision_on_grays_ties_and_black(hue_shift):
    from torchvision.transforms.v2 import functional as tvf

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[:, :, :4] = x[:, :1, :4]  # gray pixels: no hue
    x[:, 1, 4:8] = x[:, 0, 4:8]  # red and green tie for the maximum or the minimum
    x[:, :, 8:10] = 0
    shifts = torch.tensor([-0.1, 0.03, 0.5])
    shifted = hue_shift(x, shifts)
    for image, shift, ours in zip(x, shifts.tolist(), shifted, strict=True):
        torch.testing.assert_close(ours, tvf.adjust_hue(image, shift), atol=1e-5, rtol=0)


@pytest.mark.parametrize("adjust", COLOUR_ADJUSTMENTS, ids=lambda adjust: adjust.fn.__name__)
def test_compiled_colour_adjustments_give_the_eager_pixels(adjust):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 12, 12, generator=generator)
    amounts = torch.rand(16, generator=generator) * 0.4 - 0.2
    amounts = amounts if adjust is compiled_shift_hue else (1 + amounts).view(-1, 1, 1, 1)
    torch.testing.assert_close(adjust(x, amounts), adjust.fn(x, amounts), atol=1e-6, rtol=0)


def test_a_failed_compile_falls_back_to_the_eager_function_for_good(caplog):
    def no_compiler(*args):
        raise RuntimeError("no C++ compiler found")

    hue_shift = CompiledOnCpu(shift_hue)
    hue_shift.compiled = no_compiler
    x, shifts = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0.1, -0.2])
    torch.testing.assert_close(hue_shift(x, shifts), shift_hue(x, shifts), atol=0, rtol=0)
    assert hue_shift.compiled is None and "torch.compile failed: no C++ compiler" in caplog.text


def test_resized_crop_samples_where_affine_grid_would():
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(2)
    images = torch.rand(6, 3, 20, 24, generator=generator)
    boxes = crop_boxes(6, 20, 24, (0.1, 1.0), (3 / 4, 4 / 3), torch.device("cpu"), generator)
    flip = torch.tensor([True, False] * 3)
    theta = torch.zeros(6, 2, 3)
    theta[:, 0, 0] = boxes[:, 2] / 24 * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * boxes[:, 0] / 24 - 1
    theta[:, 1, 1] = boxes[:, 3] / 20
    theta[:, 1, 2] = 2 * boxes[:, 1] / 20 - 1
    grid = F.affine_grid(theta, [6, 3, 16, 16], align_corners=False)
    expected = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(resized_crop(images, boxes, flip, 16), expected, atol=1e-5, rtol=0)


def test_zero_jitter_strength_is_identity():
    config = AugmentConfig(crop_scale_min=1.0, crop_ratio=(1.0, 1.0), mirror_probability=0.0,
                           brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, jitter_probability=1.0,
                           grayscale_probability=0.0)
    x = images()
    assert torch.allclose(augment(x, config), x.float() / 255, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_gpu():
    out = augment(images().cuda(), AugmentConfig())
    assert out.is_cuda and out.shape == (6, 3, 32, 32)


def test_train_config_passes_the_mirror_probability_on_and_rejects_one_outside_zero_to_one():
    assert TrainConfig(mirror_probability=0.0).augment_config().mirror_probability == 0.0
    with pytest.raises(ValueError, match="mirror_probability"):
        TrainConfig(mirror_probability=-0.1)


def test_views_can_be_smaller_than_the_images_the_model_encodes():
    config = TrainConfig(view_size=24)
    view, _ = two_views(images(), config, config.model_config())
    assert view.shape == (6, 3, 24, 24) and config.model_config().image_size == 32
    assert TrainConfig(device="cpu").view_size == 24 and TrainConfig(device="cuda").view_size == 32  # recipes
    with pytest.raises(ValueError, match="view_size"):
        TrainConfig(view_size=8)
