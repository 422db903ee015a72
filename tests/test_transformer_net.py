import pytest
import torch

from fast_style.errors import FastStyleError
from fast_style.transformer_net import TransformerNet


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (5, 3), (16, 16), (64, 48), (101, 7)])
def test_output_size_equals_input_size(size):
    net = TransformerNet(width=8, num_residual_blocks=1).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_every_variant_builds_and_keeps_size(norm, upsample):
    net = TransformerNet(width=8, num_residual_blocks=2, norm=norm, upsample=upsample)
    y = net(torch.rand(2, 3, 37, 53))
    assert y.shape == (2, 3, 37, 53)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_output_activations_bound_the_range():
    x = torch.rand(1, 3, 32, 32) * 10
    for activation in ("sigmoid", "tanh"):
        y = TransformerNet(width=8, num_residual_blocks=1, output_activation=activation)(x)
        assert 0 <= y.min() and y.max() <= 1
    raw = TransformerNet(width=8, num_residual_blocks=1, output_activation="none")
    with torch.no_grad():
        raw.decoder[-1].bias.fill_(5.0)
    assert raw(x).max() > 1  # "none" really is unbounded


def test_residual_output_starts_as_the_photo_and_learns_from_there():
    # The untrained network returns the photo (to 8 bits); output_activation=residual is the
    # "start from the photo" initialisation of benchmarks/time_to_quality.md.
    photo = torch.rand(2, 3, 37, 50)
    net = TransformerNet(width=8, num_residual_blocks=1, output_activation="residual")
    y = net(photo)
    assert (y - photo).abs().max() <= 1 / 512 + 1e-6  # under half an 8-bit level
    with torch.no_grad():
        net.decoder[-1].bias.fill_(1.0)  # what the network adds moves the photo, smoothly
    y = net(photo)
    assert 0 <= y.min() and y.max() <= 1 and (y > photo.clamp(1 / 512, 1 - 1 / 512)).all()


def test_default_architecture_matches_johnson():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs[:3]] == [
        (3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)]
    assert len(net.residuals) == 5
    assert (convs[-1].in_channels, convs[-1].out_channels, convs[-1].kernel_size[0]) == (32, 3, 9)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(1.68e6, rel=0.02)


def test_rejects_unknown_options():
    with pytest.raises(FastStyleError, match="norm"):
        TransformerNet(norm="layer")
    with pytest.raises(FastStyleError, match="upsample"):
        TransformerNet(upsample="bilinear")
    with pytest.raises(FastStyleError, match="output_activation"):
        TransformerNet(output_activation="relu")


@pytest.mark.parametrize("settings", [{"width": 10**6}, {"width": 0}, {"width": 2.5},
                                      {"width": True}, {"num_residual_blocks": 10**5},
                                      {"num_residual_blocks": -1}, {"width": "32"}])
def test_sizes_out_of_range_are_refused_before_allocating(settings):
    # The settings also come from untrusted checkpoints: a huge width must not allocate first.
    with pytest.raises(FastStyleError, match=f"model.{next(iter(settings))}"):
        TransformerNet(**settings)


def test_instance_norm_routes_compute_the_same_and_follow_the_device():
    """Per-image batch norm (the CPU's fast route) and aten's instance_norm (a GPU's, for
    batches) are one function; the automatic choice is per device and batch size."""
    from fast_style.transformer_net import per_image_route, set_kernel_routes

    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual_blocks=1).train()
    x = torch.rand(3, 3, 32, 32)
    routes = [set_kernel_routes(net, per_image_batch_norm=forced)(x) for forced in (True, False)]
    torch.testing.assert_close(routes[0], routes[1], atol=1e-5, rtol=1e-4)
    for batch, on_cpu, elsewhere in ((4, True, False), (1, True, True)):
        assert per_image_route(torch.empty(batch, 8, 4, 4), None) is on_cpu
        assert per_image_route(torch.empty(batch, 8, 4, 4, device="meta"), None) is elsewhere
    assert per_image_route(torch.empty(4, 8, 4, 4, device="meta"), True)  # forced
    assert not per_image_route(torch.empty(4, 8, 4, 4), False)


def test_multi_style_norm_routes_compute_the_same():
    """The multi-style network's aten route (a GPU's, for batches) against its per-image one."""
    from fast_style.transformer_net import set_kernel_routes

    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual_blocks=1, num_styles=3).train()
    with torch.no_grad():  # distinct per-style scales, so that mixing them shows
        for p in net.parameters():
            if p.dim() == 2:
                p.add_(0.3 * torch.randn_like(p))
    x, weights = torch.rand(3, 3, 32, 32), torch.eye(3)
    routes = [set_kernel_routes(net, per_image_batch_norm=forced)(x, weights)
              for forced in (True, False)]
    torch.testing.assert_close(routes[0], routes[1], atol=1e-5, rtol=1e-4)
