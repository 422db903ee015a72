"""The Lightning system: a transform network trained against frozen VGG-16 perceptual losses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from fast_style.image_io import load_image, resize_long_edge, to_tensor
from fast_style.loss_net import LAYERS, VGG16Features
from fast_style.losses import (
    content_loss,
    gram_matrix,
    style_loss,
    style_loss_per_image,
    total_variation_loss,
)
from fast_style.multistyle.finetune import train_only_new_styles, trainable_parameters
from fast_style.multistyle.weights import one_hot, training_style_ids
from fast_style.transformer_net import TransformerNet

JOHNSON_STYLE_LAYERS = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}
JOHNSON_WEIGHTS = {"content": 1.0, "style": 5.0, "tv": 1e-6}
# What validation logs (and train.py can return to a sweeper as its objective).
VAL_METRICS = ("val/loss", "val/loss_content", "val/loss_style", "val/loss_tv", "val/loss_johnson")


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


# Inductor's 512-bit vector kernels computed NaN gradients in bf16 training on a CPU with
# AVX512-BF16 and AMX (torch 2.14.1: the decoder's two upsampling blocks compiled together; the
# same graph with 256-bit vectors, scalar code, or aot_eager was right; benchmarks/README.md).
# 256-bit vectors are what Inductor uses on AVX2 CPUs anyway.
CPU_BF16_COMPILE_OPTIONS = {"cpp.simdlen": 256}


class StyleTransferSystem(L.LightningModule):
    """Trains ``self.transformer`` (the only thing with gradients) for one or several styles.

    Several styles (``style_image`` and ``style_name`` lists) share one network with a scale and
    shift per style in every instance norm (Dumoulin et al., 2017); each photo of a batch gets one
    of them in turn (multistyle.weights.training_style_ids). ``frozen_styles`` names styles the
    network already holds (fine-tuning, multistyle.finetune): they come first, and then only the
    new styles' scales and shifts train. One style and nothing frozen is the single-style system.

    Hyperparameters are plain values so a checkpoint alone can rebuild the transform network.
    """

    def __init__(
        self,
        style_image: str | Sequence[str],
        style_name: str | Sequence[str] = "style",
        style_size: int | None | Sequence[int | None] = 256,
        frozen_styles: Sequence[str] | None = None,
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
        lr_warmup_steps: int = 0,
        lr_decay: str = "none",
        channels_last: bool = True,
        compile: bool = False,
    ):
        super().__init__()
        style_layers = dict(style_layers or JOHNSON_STYLE_LAYERS)
        self.save_hyperparameters()  # records the local style_layers (the dict), not the None
        for layer in [content_layer, *style_layers]:
            if layer not in LAYERS:
                raise ValueError(f"unknown VGG layer {layer!r}; choose from {', '.join(LAYERS)}")
        self.trained_styles = _as_list(style_name)
        style_images = _as_list(style_image)
        if len(style_images) != len(self.trained_styles):
            raise ValueError(f"{len(style_images)} style images for {len(self.trained_styles)} "
                             "style names")
        self.num_frozen = len(frozen_styles or [])
        # Every style the network holds, in the order of its style weights.
        self.style_names = [*map(str, frozen_styles or []), *self.trained_styles]
        self.transformer = TransformerNet(**self.transformer_hparams())
        if self.num_frozen:
            train_only_new_styles(self.transformer, self.num_frozen)
        self.vgg = VGG16Features(vgg_weights)
        # NHWC lets oneDNN/cuDNN run bf16 convolutions without reordering every activation
        # (measured 1.2-1.5x per training step on CPU; benchmarks/README.md).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.style_layers = style_layers
        # The stylised image needs the deepest layer any loss reads; the photo only its content layer.
        self.deepest_layer = max([content_layer, *style_layers], key=LAYERS.__getitem__)
        # Style Grams are fixed targets: computed once here and carried in the checkpoint,
        # (number of trained styles, C, C) per layer.
        # style_size: the painting's long edge, one for all styles or one per style.
        sizes = (list(style_size) if isinstance(style_size, Sequence)
                 else [style_size] * len(style_images))
        if len(sizes) != len(style_images):
            raise ValueError(f"{len(sizes)} style sizes for {len(style_images)} style images")
        grams: dict[str, list[torch.Tensor]] = {layer: [] for layer in style_layers}
        for path, size in zip(style_images, sizes):
            style = to_tensor(resize_long_edge(load_image(path), size)).unsqueeze(0)
            with torch.no_grad():
                features = self.vgg(style, until=self.deepest_layer)
            for layer in style_layers:
                grams[layer].append(gram_matrix(features[layer]))
        for layer in style_layers:
            self.register_buffer(f"style_gram_{layer}", torch.cat(grams[layer]))
        self.to(memory_format=self.memory_format)
        # What training steps compute their losses with: compute_losses, compiled or not once
        # the device is known (on_fit_start).
        self.training_losses = self.compute_losses
        self.cuda_graphs = False
        self.step_losses: dict[str, torch.Tensor] = {}  # the last training step's, detached

    def transformer_hparams(self) -> dict:
        """What TransformerNet(**...) needs: stored in the small inference file too."""
        keys = ("width", "num_residual_blocks", "norm", "upsample", "output_activation")
        hparams = {k: self.hparams[k] for k in keys}
        if len(self.style_names) > 1:  # one style: exactly today's network and inference file
            hparams["num_styles"] = len(self.style_names)
        return hparams

    @property
    def multi_style(self) -> bool:
        return self.transformer.num_styles > 1

    def style_weights(self, trained_ids: torch.Tensor) -> torch.Tensor:
        """One-hot network style weights for indices into ``trained_styles``."""
        return one_hot(trained_ids + self.num_frozen, self.transformer.num_styles).to(self.device)

    def batch_style_ids(self, batch_idx: int, batch_size: int) -> torch.Tensor:
        """Indices into ``trained_styles`` for this training batch (resumable: see weights.py)."""
        trainer = self.trainer
        accumulate = trainer.accumulate_grad_batches
        batch_number = trainer.global_step * accumulate + batch_idx % accumulate
        return training_style_ids(batch_number, batch_size, len(self.trained_styles),
                                  trainer.global_rank, trainer.world_size)

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

    def compute_losses(self, photos: torch.Tensor, style_ids: torch.Tensor | None = None
                       ) -> dict[str, torch.Tensor]:
        """The losses of one batch. Several styles: ``style_ids`` (indices into
        ``trained_styles``, one per photo) pick each photo's style, and the result also holds
        ``style_per_image`` (B,) for per-style logging."""
        hp = self.hparams
        photos = photos.contiguous(memory_format=self.memory_format)
        weights = None if style_ids is None else self.style_weights(style_ids)
        stylised = self.transformer(photos, weights)
        target = self.content_target(photos)
        features = self.vgg(stylised, until=self.deepest_layer)
        losses = {"loss_content": content_loss(features[hp.content_layer], target)}
        if style_ids is None:
            losses["loss_style"] = style_loss(features, self.style_grams, self.style_layers)
        else:
            targets = {layer: gram[style_ids.to(gram.device)]
                       for layer, gram in self.style_grams.items()}
            per_image = style_loss_per_image(features, targets, self.style_layers)
            losses["style_per_image"] = per_image.detach()
            losses["loss_style"] = per_image.mean()
        losses["loss_tv"] = total_variation_loss(stylised)
        losses["loss"] = (hp.content_weight * losses["loss_content"]
                          + hp.style_weight * losses["loss_style"]
                          + hp.tv_weight * losses["loss_tv"])
        if hp.stability_weight and self.training:
            losses["loss_stability"] = self.stability_loss(photos, stylised, weights)
            losses["loss"] = losses["loss"] + hp.stability_weight * losses["loss_stability"]
        return losses

    # Eager even in a compiled step: its noise is seeded from the step number, which a graph
    # would bake in (and recompile for at every step).
    @torch.compiler.disable
    def stability_loss(self, photos: torch.Tensor, stylised: torch.Tensor,
                       style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Noise stability for video (Gupta et al. 2017, Huang et al. 2017): the same photos
        with a little Gaussian noise (sensor noise, compression) must stylise the same. MSE
        between the two outputs on 0-255 pixels, the scale the VGG losses see."""
        # Noise drawn from the step number (and rank), not the global RNG: a resumed run draws
        # the same noise at the same step, as an uninterrupted one does.
        generator = torch.Generator(photos.device).manual_seed(
            self.global_step * 1009 + self.global_rank)
        noise = torch.randn(photos.shape, generator=generator, device=photos.device,
                            dtype=photos.dtype)
        noisy = (photos + self.hparams.stability_noise * noise).clamp(0, 1)
        return torch.nn.functional.mse_loss(self.transformer(noisy, style_weights).float() * 255,
                                            stylised.float() * 255)

    def on_fit_start(self) -> None:
        if self.hparams.compile:
            self.compile_for_training(str(self.trainer.precision))

    def compile_for_training(self, precision: str | None = None) -> None:
        """torch.compile, as suits the device (``model.compile=true``; benchmarks/gpu.md).

        - A GPU: the whole training computation (network, VGG, losses) as one graph, replayed
          as a CUDA graph ("reduce-overhead"): Inductor fuses the elementwise work and a replay
          launches the step's ~800 kernels at once. On an H200 at batch 4: 1.84x eager in a
          plain loop, 1.33x under the Trainer. Without CUDA graphs where their reused buffers
          would be wrong: gradient accumulation adds into the previous step's gradient
          buffers, and DDP's hooks run inside the backward. Validation stays eager there: its
          photos have other sizes, each a new graph.
        - A CPU: the transform network stage by stage, in place (state_dict keys unchanged), so
          validation runs compiled too. The whole network as one graph gave NaN gradients in
          bf16 from the first step (torch 2.14, CPU, width 32; width 8 and each stage alone
          were fine). In bf16 (``precision``), Inductor writes 256-bit vector code
          (CPU_BF16_COMPILE_OPTIONS).
        """
        if self.device.type != "cuda":
            options = CPU_BF16_COMPILE_OPTIONS if "bf16" in (precision or "") else None
            for stage in (self.transformer.encoder, self.transformer.residuals,
                          self.transformer.decoder):
                stage.compile(options=options)
            return
        trainer = self.trainer
        self.cuda_graphs = trainer.accumulate_grad_batches == 1 and trainer.world_size == 1
        self.training_losses = torch.compile(
            self.compute_losses, mode="reduce-overhead" if self.cuda_graphs else "default")

    def training_step(self, photos: torch.Tensor, batch_idx: int) -> torch.Tensor:
        ids = self.batch_style_ids(batch_idx, photos.shape[0]) if self.multi_style else None
        if self.cuda_graphs:
            # A new step: the last replay's outputs may be overwritten from here on.
            torch.compiler.cudagraph_mark_step_begin()
        losses = self.training_losses(photos, ids)
        if self.cuda_graphs:
            # Replayed outputs live in buffers the next step reuses; what Lightning keeps
            # (logged values, the step's output) must be copies.
            losses = {k: v.clone() for k, v in losses.items()}
        if ids is not None:
            self.log_styles_of_batch(ids, losses.pop("style_per_image"))
        # This step's values: logged in on_train_batch_end, read by the progress bar when it
        # refreshes (feedback.StepProgressBar) and by callbacks.GracefulStop.
        self.step_losses = {k: v.detach() for k, v in losses.items()}
        return losses["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # Only on the steps Lightning hands to the logger, decided here, after the callbacks that
        # may stop the run at this step: logging costs ~0.4 ms of CPU a value (measured), and a
        # compiled GPU step takes ~10 ms. Nothing is logged to the progress bar: Lightning reads
        # progress-bar values off the device after every step, and on a GPU each read waits for
        # every queued kernel. sync_dist: under DDP the logged value is the mean over all ranks'
        # batches, not rank 0's.
        if self.logs_this_step():
            self.log_dict({f"train/{k}": v for k, v in self.step_losses.items()}, sync_dist=True)

    def logs_this_step(self) -> bool:
        """Whether Lightning passes this training step's values to the logger, asked in
        on_train_batch_end: every ``log_every_n_steps`` steps, counted as Lightning counts them
        (with gradient accumulation too), and a step after which training stops (the callbacks
        have had their say by then). Lightning's own test, so the points are exactly its own;
        should a Lightning release move it, every step logs, as before."""
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

    def log_styles_of_batch(self, ids: torch.Tensor, per_image: torch.Tensor) -> None:
        """train/loss_style/<name> for the styles this batch trained, straight to the logger.

        Not through self.log: with more styles than photos per batch, a style missing from a
        batch would be logged again with its last value (Lightning keeps every key of the epoch),
        a flat stale curve. This rank's photos only: under DDP the ranks hold different styles.
        """
        trainer = self.trainer
        last = 0 < trainer.max_steps <= self.global_step + 1  # Lightning logs the last step too
        if (self.logger is None or not trainer.is_global_zero
                or ((self.global_step + 1) % trainer.log_every_n_steps and not last)):
            return
        self.logger.log_metrics({f"train/loss_style/{self.trained_styles[i]}":
                                 float(per_image[ids == i].mean())
                                 for i in ids.unique().tolist()}, step=self.global_step)

    def validation_losses(self, photos: torch.Tensor, style_ids: torch.Tensor | None = None
                          ) -> dict[str, torch.Tensor]:
        """compute_losses plus ``loss_johnson``, for validation (and feedback.EarlyFeedback)."""
        losses = self.compute_losses(photos, style_ids)
        losses.pop("style_per_image", None)
        # val/loss weighs by this run's own loss weights, so it cannot rank runs that differ in
        # them (lower weights, lower loss). loss_johnson weighs the same terms by the paper's fixed
        # weights: the objective for searches over loss weights (configs/hparams_search/).
        losses["loss_johnson"] = (JOHNSON_WEIGHTS["content"] * losses["loss_content"]
                                  + JOHNSON_WEIGHTS["style"] * losses["loss_style"]
                                  + JOHNSON_WEIGHTS["tv"] * losses["loss_tv"])
        return losses

    def validation_metrics(self, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        """What validation logs (without the ``val/`` prefix), for validation_step and
        feedback.EarlyFeedback alike. Several styles: every held-out photo in every trained
        style, per-style ``loss_style/<name>`` and ``loss_johnson/<name>``, and the mean over
        styles as the plain names (what objectives, FinalMetrics and summaries read)."""
        if not self.multi_style:
            return self.validation_losses(photos)
        metrics, per_style = {}, []
        for i, name in enumerate(self.trained_styles):
            ids = torch.full((photos.shape[0],), i, dtype=torch.long)
            style_losses = self.validation_losses(photos, ids)
            metrics.update({f"{key}/{name}": style_losses[key]
                            for key in ("loss_style", "loss_johnson")})
            per_style.append(style_losses)
        metrics.update({k: torch.stack([s[k] for s in per_style]).mean() for k in per_style[0]})
        return metrics

    def validation_step(self, photos: torch.Tensor, batch_idx: int) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.validation_metrics(photos).items()},
                      sync_dist=True, batch_size=photos.shape[0])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The frozen VGG is rebuilt from its weight source; keeping it out saves ~30 MB per file.
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if not k.startswith("vgg.")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"].update({f"vgg.{k}": v for k, v in self.vgg.state_dict().items()})

    def on_train_start(self) -> None:
        # A resumed optimizer (and schedule) carries the learning rate it was saved with. This
        # run's lr, warm-up and decay are what count: fine-tuning with a new lr after a cosine
        # that ended at 0 (accept_changed_settings=true) would otherwise train at 0, silently.
        # On a fresh start, or a resume with the same settings, this sets what is already there.
        hp = self.hparams
        factor = self.scheduled_lr_factor(self.trainer.global_step)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"], group["initial_lr"] = hp.lr * factor, hp.lr
        for config in self.trainer.lr_scheduler_configs:
            # A schedule new to this run (none was saved) would count from 0, not from the step.
            config.scheduler.base_lrs = [hp.lr] * len(config.scheduler.base_lrs)
            config.scheduler.last_epoch = self.trainer.global_step

    def configure_optimizers(self):
        # fused: one kernel for all parameters instead of a dozen elementwise passes per tensor.
        optimizer = torch.optim.Adam(trainable_parameters(self.transformer), lr=self.hparams.lr,
                                     fused=True)
        if not self.hparams.lr_warmup_steps and self.hparams.lr_decay == "none":
            return optimizer
        # LambdaLR saves a callable's __dict__ in checkpoints; a bound method's is empty, so the
        # system and its trainer stay out of the file.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.scheduled_lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def scheduled_lr_factor(self, step: int) -> float:
        """lr_factor for this run: the decay ends at trainer.max_steps or at trainer.max_time,
        whichever comes first, so a budget in minutes ends at lr 0 instead of being cut off."""
        hp = self.hparams
        time_done = budget_time_done(self.trainer)
        if self.trainer.world_size > 1 and budget_timer(self.trainer) is not None:
            # Each process reads its own clock: without one fraction for all, the processes
            # would step with slightly different rates and their weights would drift apart.
            time_done = self.trainer.strategy.broadcast(time_done, src=0)
        return lr_factor(step, hp.lr_warmup_steps, hp.lr_decay, self.trainer.max_steps,
                         time_done=time_done)


LR_DECAYS = ("none", "cosine", "linear")


def budget_timer(trainer: L.Trainer) -> Timer | None:
    """Lightning's Timer for trainer.max_time (it also counts the time before a resume)."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    return timer if timer is not None and timer.time_remaining("train") is not None else None


def budget_time_done(trainer: L.Trainer) -> float:
    """The fraction of trainer.max_time spent training so far; 0 without a time limit."""
    timer = budget_timer(trainer)
    if timer is None:
        return 0.0
    remaining = timer.time_remaining("train")
    elapsed = timer.time_elapsed("train")
    return min(1.0, elapsed / max(elapsed + remaining, 1e-9))


def time_budget_binds(step: int, total: int, time_done: float) -> bool:
    """Whether the time budget runs out before the steps do: there is no step budget, or a
    larger share of the time than of the ``total`` steps is spent at ``step``."""
    return total < 1 or time_done > step / total


def lr_factor(step: int, warmup: int, decay: str, total: int, time_done: float = 0.0) -> float:
    """The learning rate at ``step`` as a fraction of ``lr``: a linear warm-up over ``warmup``
    steps, then constant ("none"), or down to 0 along a half cosine ("cosine") or a straight
    line ("linear") at step ``total``; or at the end of a time budget, when ``time_done``
    (the fraction of it spent) is further along than ``step / total``."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "none":
        return 1.0
    done = min(1.0, (step - warmup) / (total - warmup)) if total > warmup else 0.0
    if time_budget_binds(step, total, time_done):
        done = time_done
    if decay == "linear":
        return 1.0 - done
    return 0.5 * (1 + math.cos(math.pi * done))
