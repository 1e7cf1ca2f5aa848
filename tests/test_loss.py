import math

import pytest
import torch

from nac_hash.loss import NACLoss, NACMQLoss, NTXentLoss, channel_weight, sample_flip_mask
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel


def slow_nac_terms(z: torch.Tensor, y: torch.Tensor, r: torch.Tensor, negatives: torch.Tensor, lam: float):
    """Per-input -positive + logsumexp, written with explicit loops over inputs, bits and negatives."""
    out = []
    for i in range(len(z)):
        positive = 0.0
        for d in range(z.shape[1]):
            q = 1 / (1 + math.exp(-r[i, d]))
            positive += 0.5 * (y[i, d] * r[i, d] + math.log(q * (1 - q)) - math.log(0.25))
        scores = [lam * sum(y[i, d] * negatives[k, d] for d in range(z.shape[1])) for k in range(len(negatives))]
        top = max(scores)
        out.append(-positive + top + math.log(sum(math.exp(s - top) for s in scores)))
    return torch.tensor(out, dtype=torch.float64)


def random_inputs(k: int = 3, bits: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(k, bits, generator=g, dtype=torch.float64) for _ in range(4)]


def test_nac_loss_matches_slow_computation():
    a1, a2, r1, r2 = random_inputs()
    mask = sample_flip_mask((6, 16), 0.3, "cpu", torch.Generator().manual_seed(1)).double()
    loss = NACLoss(p=0.3)(a1, a2, r1, r2, flip_mask=mask)
    z = torch.tanh(torch.cat([a1, a2]))
    expected = slow_nac_terms(z, mask * z, torch.cat([r1, r2]), z, channel_weight(0.3)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_channel_weight_and_flip_rate():
    assert channel_weight(0.4) == pytest.approx(0.5 * math.log(1.5))
    mask = sample_flip_mask((200, 128), 0.1, "cpu", torch.Generator().manual_seed(0))
    assert set(mask.unique().tolist()) == {-1.0, 1.0}
    assert (mask < 0).float().mean().item() == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.7, -0.1])
def test_invalid_flip_probability_is_rejected(p):
    with pytest.raises(ValueError):
        NACLoss(p)


def test_nac_mq_loss_matches_slow_computation_and_fills_queue():
    a1, a2, r1, r2 = random_inputs()
    keys = torch.randn(6, 16, dtype=torch.float64)
    loss_fn = NACMQLoss(bits=16, p=0.4, queue_size=8, l2_weight=0.1).double()
    loss_fn.enqueue(torch.tanh(torch.randn(4, 16, dtype=torch.float64)))
    queue_before = loss_fn.queue[:4].clone()
    mask = sample_flip_mask((6, 16), 0.4, "cpu", torch.Generator().manual_seed(2)).double()
    loss = loss_fn(a1, a2, r1, r2, keys, flip_mask=mask)
    z = torch.tanh(torch.cat([a1, a2]))
    negatives = torch.cat([torch.tanh(keys), queue_before])
    terms = slow_nac_terms(z, mask * z, torch.cat([r1, r2]), negatives, channel_weight(0.4))
    expected = (terms + 0.1 * z.pow(2).sum(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # 4 + 6 codes in a queue of 8: the ring wrapped and is full, newest keys last written.
    assert int(loss_fn.filled) == 8 and int(loss_fn.cursor) == 2
    assert torch.allclose(loss_fn.queue[:2], torch.tanh(keys[4:]))


def test_nt_xent_matches_slow_computation():
    a1, a2, _, _ = random_inputs(k=4, bits=8)
    loss = NTXentLoss(temperature=0.5)(a1, a2)
    z = torch.nn.functional.normalize(torch.cat([a1, a2]), dim=1)
    terms = []
    for i in range(8):
        partner = (i + 4) % 8
        others = [math.exp(float(z[i] @ z[k]) / 0.5) for k in range(8) if k != i]
        terms.append(-float(z[i] @ z[partner]) / 0.5 + math.log(sum(others)))
    assert loss.item() == pytest.approx(sum(terms) / 8, rel=1e-6)


def tiny_model() -> HashingModel:
    torch.manual_seed(0)
    return HashingModel(ModelConfig(arch="cnn_small", bits=16, image_size=16))


def test_gradients_reach_encoder_and_both_heads():
    model = tiny_model()
    x1, x2 = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    h1, h2 = model(x1), model(x2)
    loss = NACLoss(0.4)(model.code_logits(h1), model.code_logits(h2), model.bit_logits(h2), model.bit_logits(h1))
    loss.backward()
    for part in (model.backbone, model.projection, model.inference):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part


def test_nac_loss_falls_on_a_tiny_problem():
    """Free codes for 16 items seen through two noisy views, and a per-bit decoder scale: optimising the
    NAC loss must make the codes informative, clearly below the log(2K) of uninformative codes."""
    generator = torch.Generator().manual_seed(0)
    codes = (0.01 * torch.randn(16, 32, generator=generator)).requires_grad_()
    scale = torch.zeros(32, requires_grad=True)
    loss_fn = NACLoss(0.2)
    optimizer = torch.optim.Adam([codes, scale], lr=0.05)
    losses = []
    for _ in range(150):
        a1 = codes + 0.01 * torch.randn(codes.shape, generator=generator)
        a2 = codes + 0.01 * torch.randn(codes.shape, generator=generator)
        mask = sample_flip_mask((32, 32), 0.2, "cpu", generator)
        loss = loss_fn(a1, a2, scale * torch.tanh(a2), scale * torch.tanh(a1), flip_mask=mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(32), abs=0.05)
    assert sum(losses[-10:]) / 10 < math.log(32) - 0.4


def test_channel_capacity_matches_the_binary_entropy():
    from nac_hash.loss import channel_capacity_bits

    assert channel_capacity_bits(128, 0.4) == pytest.approx(128 * (1 - 0.970950594), rel=1e-6)  # H(0.4)
    assert channel_capacity_bits(128, 0.25) == pytest.approx(24.15, abs=0.01)
    assert channel_capacity_bits(16, 0.1) < channel_capacity_bits(16, 0.05) < 16
