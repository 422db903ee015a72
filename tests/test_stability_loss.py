"""loss.stability_weight: training for video makes the network robust to small input noise."""

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from fast_style.module import StyleTransferSystem


def smooth_photos(count: int = 2, size: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    coarse = torch.rand(count, 3, size // 8, size // 8)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")


def system_for(style_path, weight: float) -> StyleTransferSystem:
    torch.manual_seed(0)
    return StyleTransferSystem(str(style_path), style_size=32, width=8, num_residual_blocks=1,
                               vgg_weights="random", stability_weight=weight,
                               stability_noise=0.05, channels_last=False)


def change_under_noise(system: StyleTransferSystem, photos: torch.Tensor) -> float:
    """Mean |output change| on [0, 1] pixels when the photos get the training noise."""
    torch.manual_seed(2)
    noisy = (photos + 0.05 * torch.randn_like(photos)).clamp(0, 1)
    with torch.no_grad():
        return float((system.transformer(noisy) - system.transformer(photos)).abs().mean())


def test_stability_loss_is_off_by_default_and_only_in_training(style_path):
    photos = smooth_photos()
    assert "loss_stability" not in system_for(style_path, 0.0).compute_losses(photos)
    system = system_for(style_path, 1.0)
    assert "loss_stability" in system.train().compute_losses(photos)
    assert "loss_stability" not in system.eval().compute_losses(photos)


def test_stability_noise_follows_the_step_not_the_global_random_state(style_path):
    # A resumed run must draw the noise the uninterrupted run drew at that step.
    system, photos = system_for(style_path, 1.0), smooth_photos()
    with torch.no_grad():
        stylised = system.transformer(photos)
        torch.manual_seed(5)
        first = system.stability_loss(photos, stylised)
        torch.manual_seed(6)
        assert system.stability_loss(photos, stylised) == first
    assert first > 0


@pytest.mark.slow
def test_stability_loss_steadies_the_output_when_overfitting(style_path):
    photos = smooth_photos()
    changes = {}
    for weight in (0.0, 1.0):
        system = system_for(style_path, weight).train()
        optimizer = system.configure_optimizers()
        for _ in range(15):
            loss = system.compute_losses(photos)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        changes[weight] = change_under_noise(system.eval(), photos)
    assert changes[1.0] < 0.7 * changes[0.0], changes


def test_stability_loss_is_logged(style_path, tmp_path):
    trainer = L.Trainer(max_steps=1, logger=CSVLogger(tmp_path), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=1, accelerator="cpu")
    trainer.fit(system_for(style_path, 1.0), DataLoader(list(smooth_photos()), batch_size=2))
    assert "train/loss_stability" in trainer.logged_metrics
