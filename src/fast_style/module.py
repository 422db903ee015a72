"""The Lightning system: a transform network trained against frozen VGG-16 perceptual losses."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch

from fast_style.image_io import load_image, resize_long_edge, to_tensor
from fast_style.loss_net import LAYERS, VGG16Features
from fast_style.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from fast_style.transformer_net import TransformerNet

JOHNSON_STYLE_LAYERS = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}
JOHNSON_WEIGHTS = {"content": 1.0, "style": 5.0, "tv": 1e-6}
# What validation logs (and train.py can return to a sweeper as its objective).
VAL_METRICS = ("val/loss", "val/loss_content", "val/loss_style", "val/loss_tv", "val/loss_johnson")


class StyleTransferSystem(L.LightningModule):
    """Trains ``self.transformer`` (the only thing with gradients) for one style image.

    Hyperparameters are plain values so a checkpoint alone can rebuild the transform network.
    """

    def __init__(
        self,
        style_image: str,
        style_name: str = "style",
        style_size: int | None = 256,
        # transform network
        width: int = 32,
        num_residual_blocks: int = 5,
        norm: str = "instance",
        upsample: str = "nearest",
        output_activation: str = "sigmoid",
        # losses
        content_weight: float = 1.0,
        style_weight: float = 5.0,
        tv_weight: float = 1e-6,
        content_layer: str = "relu2_2",
        style_layers: Mapping[str, float] | None = None,
        vgg_weights: str = "caffe",
        stability_weight: float = 0.0,
        stability_noise: float = 0.03,
        # optimisation
        lr: float = 1e-3,
        channels_last: bool = True,
        compile: bool = False,
    ):
        super().__init__()
        style_layers = dict(style_layers or JOHNSON_STYLE_LAYERS)
        self.save_hyperparameters()  # records the local style_layers (the dict), not the None
        for layer in [content_layer, *style_layers]:
            if layer not in LAYERS:
                raise ValueError(f"unknown VGG layer {layer!r}; choose from {', '.join(LAYERS)}")
        self.transformer = TransformerNet(**self.transformer_hparams())
        self.vgg = VGG16Features(vgg_weights)
        # NHWC lets oneDNN/cuDNN run bf16 convolutions without reordering every activation
        # (measured 1.2-1.5x per training step on CPU; benchmarks/README.md).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.style_layers = style_layers
        # The stylised image needs the deepest layer any loss reads; the photo only its content layer.
        self.deepest_layer = max([content_layer, *style_layers], key=LAYERS.__getitem__)
        # Style Grams are fixed targets: computed once here and carried in the checkpoint.
        style = to_tensor(resize_long_edge(load_image(style_image), style_size)).unsqueeze(0)
        with torch.no_grad():
            features = self.vgg(style, until=self.deepest_layer)
        for layer in style_layers:
            self.register_buffer(f"style_gram_{layer}", gram_matrix(features[layer]))
        self.to(memory_format=self.memory_format)
        if compile:
            # In place (nn.Module.compile): state_dict keys stay those of the plain network.
            # Stage by stage: the whole network as one graph gave NaN gradients in bf16 from the
            # first step (torch 2.14, CPU, width 32; width 8 and each stage alone were fine).
            for stage in (self.transformer.encoder, self.transformer.residuals,
                          self.transformer.decoder):
                stage.compile()

    def transformer_hparams(self) -> dict:
        """What TransformerNet(**...) needs: stored in the small inference file too."""
        keys = ("width", "num_residual_blocks", "norm", "upsample", "output_activation")
        return {k: self.hparams[k] for k in keys}

    @property
    def style_grams(self) -> dict[str, torch.Tensor]:
        return {layer: getattr(self, f"style_gram_{layer}") for layer in self.style_layers}

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        return self.transformer(photos)

    @torch.no_grad()
    def content_target(self, photos: torch.Tensor) -> torch.Tensor:
        """The photo's VGG activation at the content layer: nothing deeper is computed."""
        layer = self.hparams.content_layer
        return self.vgg(photos, until=layer)[layer]

    def compute_losses(self, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        photos = photos.contiguous(memory_format=self.memory_format)
        stylised = self.transformer(photos)
        target = self.content_target(photos)
        features = self.vgg(stylised, until=self.deepest_layer)
        losses = {
            "loss_content": content_loss(features[hp.content_layer], target),
            "loss_style": style_loss(features, self.style_grams, self.style_layers),
            "loss_tv": total_variation_loss(stylised),
        }
        losses["loss"] = (hp.content_weight * losses["loss_content"]
                          + hp.style_weight * losses["loss_style"]
                          + hp.tv_weight * losses["loss_tv"])
        if hp.stability_weight and self.training:
            losses["loss_stability"] = self.stability_loss(photos, stylised)
            losses["loss"] = losses["loss"] + hp.stability_weight * losses["loss_stability"]
        return losses

    def stability_loss(self, photos: torch.Tensor, stylised: torch.Tensor) -> torch.Tensor:
        """Noise stability for video (Gupta et al. 2017, Huang et al. 2017): the same photos
        with a little Gaussian noise (sensor noise, compression) must stylise the same. MSE
        between the two outputs on 0-255 pixels, the scale the VGG losses see."""
        noisy = (photos + self.hparams.stability_noise * torch.randn_like(photos)).clamp(0, 1)
        return torch.nn.functional.mse_loss(self.transformer(noisy).float() * 255,
                                            stylised.float() * 255)

    def training_step(self, photos: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(photos)
        # sync_dist: under DDP the logged value is the mean over all ranks' batches, not rank 0's.
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, sync_dist=True)
        self.log("loss", losses["loss"].detach(), prog_bar=True, logger=False)
        return losses["loss"]

    def validation_losses(self, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        """compute_losses plus ``loss_johnson``, for validation (and feedback.EarlyFeedback)."""
        losses = self.compute_losses(photos)
        # val/loss weighs by this run's own loss weights, so it cannot rank runs that differ in
        # them (lower weights, lower loss). loss_johnson weighs the same terms by the paper's fixed
        # weights: the objective for searches over loss weights (configs/hparams_search/).
        losses["loss_johnson"] = (JOHNSON_WEIGHTS["content"] * losses["loss_content"]
                                  + JOHNSON_WEIGHTS["style"] * losses["loss_style"]
                                  + JOHNSON_WEIGHTS["tv"] * losses["loss_tv"])
        return losses

    def validation_step(self, photos: torch.Tensor, batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.validation_losses(photos).items()},
                      sync_dist=True, batch_size=photos.shape[0])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The frozen VGG is rebuilt from its weight source; keeping it out saves ~30 MB per file.
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if not k.startswith("vgg.")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"].update({f"vgg.{k}": v for k, v in self.vgg.state_dict().items()})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters instead of a dozen elementwise passes per tensor.
        return torch.optim.Adam(self.transformer.parameters(), lr=self.hparams.lr, fused=True)
