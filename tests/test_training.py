"""Optimisation really works with the real Caffe VGG-16 weights."""

import pytest
import torch

from fast_style.module import StyleTransferSystem

pytestmark = pytest.mark.slow


def test_loss_halves_when_overfitting_one_batch(style_path):
    torch.manual_seed(0)
    system = StyleTransferSystem(str(style_path), style_size=64, width=16, num_residual_blocks=2,
                                 lr=1e-3)
    photos = torch.rand(2, 3, 48, 48)
    optimizer = system.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = system.compute_losses(photos)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_only_the_transform_net_learns(style_path):
    system = StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1)
    trainable = {n.split(".")[0] for n, p in system.named_parameters() if p.requires_grad}
    assert trainable == {"transformer"}
    params = {id(p) for group in system.configure_optimizers().param_groups for p in group["params"]}
    assert params == {id(p) for p in system.transformer.parameters()}


def test_compiled_training_follows_eager_in_bf16(style_path):
    # model.compile=true once gave NaN losses from the second step (one graph for the whole
    # width-32 network, bf16, CPU) while eager was fine: the two must train alike.
    def losses(compile: bool) -> list[float]:
        torch.manual_seed(0)
        system = StyleTransferSystem(str(style_path), style_size=64, width=32,
                                     num_residual_blocks=1, compile=compile)
        optimizer = system.configure_optimizers()
        photos = torch.rand(2, 3, 64, 64)
        curve = []
        for _ in range(3):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = system.compute_losses(photos)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        return curve

    eager, compiled = losses(False), losses(True)
    assert compiled == pytest.approx(eager, rel=0.02), (eager, compiled)


def test_learning_rate_warms_up_then_stays_or_follows_a_cosine():
    from fast_style.module import lr_factor

    assert [lr_factor(s, 4, "none", 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(0, 0, "none", 100) == 1.0 and lr_factor(99, 0, "none", 100) == 1.0
    cosine = [lr_factor(s, 0, "cosine", 100) for s in (0, 50, 100, 150)]
    assert cosine == [1.0, pytest.approx(0.5), pytest.approx(0.0), pytest.approx(0.0)]
    assert lr_factor(10, 10, "cosine", 110) == 1.0  # the cosine starts after the warm-up
