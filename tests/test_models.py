import pytest
import torch
from helpers import import_benchmark

from nac_hash.model_config import ModelConfig
from nac_hash.models import GlobalAvgPool, HashingModel, ema_update


@pytest.mark.parametrize(("arch", "dim"), [("vgg16_bn", 512), ("resnet18", 512), ("resnet50", 2048),
                                           ("cnn_small", 256)])
def test_architectures_give_codes_of_the_configured_length(arch, dim):
    model = HashingModel(ModelConfig(arch=arch, bits=64, image_size=32)).eval()
    features = model(torch.randn(2, 3, 32, 32))
    assert model.feature_dim == dim and features.shape == (2, dim)
    assert model.code_logits(features).shape == (2, 64)
    assert model.bit_logits(features).shape == (2, 64)


def test_resnet_stem_follows_image_size():
    small = HashingModel(ModelConfig(arch="resnet18", image_size=32)).backbone
    large = HashingModel(ModelConfig(arch="resnet18", image_size=224)).backbone
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.stride == (2, 2) and isinstance(large.maxpool, torch.nn.MaxPool2d)


def test_cnn_small_width_and_depth_shape_the_encoder():
    base = HashingModel(ModelConfig(arch="cnn_small"))
    wide = HashingModel(ModelConfig(arch="cnn_small", width=48))
    deep = HashingModel(ModelConfig(arch="cnn_small", depth=2))
    assert wide.feature_dim == 48 * 8 and wide(torch.randn(2, 3, 32, 32)).shape == (2, 48 * 8)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in model.backbone) for model in (base, deep)]
    assert convs == [4, 8] and deep.feature_dim == base.feature_dim


@pytest.mark.parametrize("kwargs", [{"bits": 100}, {"bits": 8}, {"arch": "vit"}, {"image_size": 8}, {"width": 0},
                                    {"arch": "cnn_small", "depth": 0}, {"arch": "resnet18", "width": 64}])
def test_invalid_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_model_without_inference_head_refuses_bit_logits():
    model = HashingModel(ModelConfig(arch="cnn_small", inference_head=False))
    with pytest.raises(RuntimeError):
        model.bit_logits(torch.zeros(1, model.feature_dim))


def test_ema_update_moves_target_towards_source():
    source = HashingModel(ModelConfig(arch="cnn_small", bits=16))
    target = HashingModel(ModelConfig(arch="cnn_small", bits=16))
    before = next(target.parameters()).detach().clone()
    ema_update(target, source, decay=0.9)
    expected = 0.9 * before + 0.1 * next(source.parameters()).detach()
    assert torch.allclose(next(target.parameters()), expected, atol=1e-6)


@pytest.mark.parametrize("depth", [1, 2])
def test_cnn_small_layer_changes_keep_outputs_and_gradients(depth):
    backbone = HashingModel(ModelConfig(arch="cnn_small", width=8, depth=depth)).backbone
    reference = import_benchmark("step_profile").previous_layers(backbone)
    assert [type(m) for m in reference] != [type(m) for m in backbone]
    images = torch.randn(4, 3, 32, 32)
    grads = []
    for net in (backbone, reference):
        net.zero_grad()
        out = net(images)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    (out, weight_grads), (ref_out, ref_weight_grads) = grads
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(weight_grads, ref_weight_grads, strict=True))


def test_global_average_pooling_is_the_spatial_mean_in_both_directions():
    x = torch.randn(3, 5, 4, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    pooled = GlobalAvgPool()(x)
    weights = torch.randn(3, 5)
    (pooled * weights).sum().backward()
    assert torch.allclose(pooled, x.mean((2, 3)), atol=1e-6)
    assert torch.allclose(x.grad, weights[:, :, None, None].expand_as(x) / 24, atol=1e-7)
    assert x.grad.is_contiguous(memory_format=torch.channels_last)  # dense, not a broadcast view
