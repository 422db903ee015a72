"""Conditional instance norm: per-sample styles, blends, and one style left exactly as it was."""

import pytest
import torch

from fast_style.transformer_net import ConditionalInstanceNorm2d, InstanceNorm2d, TransformerNet


def random_multi_style_net(num_styles: int, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(width=8, num_residual_blocks=2, num_styles=num_styles)
    with torch.no_grad():  # distinct styles: the identity initialisation would make them equal
        for m in net.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.style_scale.uniform_(0.5, 1.5)
                m.style_shift.uniform_(-0.5, 0.5)
    return net


def single_style_copy(net: TransformerNet, style: int) -> TransformerNet:
    """The plain one-style network holding ``net``'s shared weights and one style's scale/shift."""
    single = TransformerNet(width=8, num_residual_blocks=2)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("style_scale"):
            state[key.replace("style_scale", "weight")] = value[style]
        elif key.endswith("style_shift"):
            state[key.replace("style_shift", "bias")] = value[style]
        else:
            state[key] = value
    single.load_state_dict(state)
    return single


def test_one_style_is_todays_network():
    net = TransformerNet(width=8, num_residual_blocks=1)
    assert not any(isinstance(m, ConditionalInstanceNorm2d) for m in net.modules())
    assert all(k.endswith(("weight", "bias")) for k in net.state_dict())
    assert sum(isinstance(m, InstanceNorm2d) for m in net.modules()) == 7


def test_each_image_of_a_batch_gets_its_own_style():
    net = random_multi_style_net(3).eval()
    photos = torch.rand(2, 3, 36, 44)
    picks = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # image 0: style 2, image 1: style 0
    with torch.no_grad():
        both = net(photos, picks)
        # The same batch through plain networks (batch size can change convolution kernels)
        alone_2 = single_style_copy(net, 2).eval()(photos)
        alone_0 = single_style_copy(net, 0).eval()(photos)
    assert torch.equal(both[0], alone_2[0])
    assert torch.equal(both[1], alone_0[1])
    assert not torch.allclose(alone_0, alone_2)


def test_blend_at_weight_one_is_the_pure_style_and_blends_lie_between():
    net = random_multi_style_net(2).eval()
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        pure = net(photo, torch.tensor([[1.0, 0.0]]))
        other = net(photo, torch.tensor([[0.0, 1.0]]))
        half = net(photo, torch.tensor([[0.5, 0.5]]))
        # The same mix given as a tensor of one row for a batch of two images
        batch = net(photo.repeat(2, 1, 1, 1), torch.tensor([[1.0, 0.0]]))
    assert torch.equal(pure, single_style_copy(net, 0).eval()(photo))
    assert torch.allclose(batch[1], pure[0], atol=1e-6)
    assert 0 < (half - pure).abs().mean() < (other - pure).abs().mean()


def test_missing_or_wrong_style_weights_are_refused():
    net = random_multi_style_net(2)
    with pytest.raises(RuntimeError, match="style weights"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="3 styles"):
        net(torch.rand(1, 3, 16, 16), torch.ones(1, 3) / 3)


def test_style_parameters_train_per_style():
    net = random_multi_style_net(3)
    net(torch.rand(2, 3, 16, 16), torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])).mean().backward()
    norm = next(m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d))
    assert norm.style_scale.grad[0].abs().sum() > 0 and norm.style_scale.grad[2].abs().sum() > 0
    assert norm.style_scale.grad[1].abs().sum() == 0  # no image had style 1
