"""Training callbacks: sample image grids, the small inference file, final metrics + HParams."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torchvision.utils import make_grid

from fast_style.image_io import save_image
from fast_style.stylize import INFERENCE_FORMAT


def stylise_eval(system: L.LightningModule, photos: torch.Tensor) -> torch.Tensor:
    """Stylise in eval mode without gradients, restoring the previous mode after."""
    was_training = system.transformer.training
    system.transformer.eval()
    try:
        with torch.no_grad():
            return system.transformer(photos.to(system.device)).float().clamp(0, 1).cpu()
    finally:
        system.transformer.train(was_training)


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` logs a grid: held-out photos on top, their stylisations below."""

    def __init__(self, every_n_steps: int = 500, count: int = 4):
        self.every_n_steps = every_n_steps
        self.count = count
        self._photos: torch.Tensor | None = None

    def _sample_photos(self, trainer: L.Trainer) -> torch.Tensor:
        if self._photos is None:
            dataset = trainer.datamodule.val_dataset()
            self._photos = torch.stack([dataset[i] for i in range(min(self.count, len(dataset)))])
        return self._photos

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps or not trainer.is_global_zero:
            return
        self.log_grid(trainer, system)

    def on_train_end(self, trainer, system) -> None:
        if trainer.is_global_zero and self.every_n_steps > 0:
            self.log_grid(trainer, system)

    def log_grid(self, trainer: L.Trainer, system: L.LightningModule) -> None:
        photos = self._sample_photos(trainer)
        grid = make_grid(torch.cat([photos, stylise_eval(system, photos)]), nrow=len(photos),
                         padding=2)
        logger = trainer.logger
        if logger is None:
            return
        experiment = logger.experiment
        if hasattr(experiment, "add_image"):  # TensorBoard
            experiment.add_image("samples/content_vs_stylised", grid, trainer.global_step)
        else:  # loggers without images (CSV): a PNG beside the metrics
            save_image(grid, Path(logger.log_dir) / "samples" / f"step_{trainer.global_step:07d}.png")


def inference_payload(system: L.LightningModule) -> dict:
    """The transform net's weights plus what is needed to rebuild it: loadable with weights_only."""
    return {
        "format": INFERENCE_FORMAT,
        "transformer_hparams": dict(system.transformer_hparams()),
        "state_dict": {k: v.detach().cpu() for k, v in system.transformer.state_dict().items()},
        "style_name": str(system.hparams.style_name),
    }


class InferenceFileWriter(L.Callback):
    """Writes ``<dirpath>/<style>.pth`` beside every Lightning checkpoint and at the end."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def path_for(self, system: L.LightningModule) -> Path:
        return self.dirpath / f"{system.hparams.style_name}.pth"

    def write(self, trainer: L.Trainer, system: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        payload = inference_payload(system)
        payload["global_step"] = trainer.global_step
        path = self.path_for(system)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pth.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    def on_save_checkpoint(self, trainer, system, checkpoint) -> None:
        self.write(trainer, system)

    def on_train_end(self, trainer, system) -> None:
        self.write(trainer, system)


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus last.ckpt at the very end of training.

    Lightning writes last.ckpt at train end only if nothing was saved before; the steps after the
    last periodic save would then be lost whenever max_steps is not a multiple of the interval.
    """

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class FinalMetrics(L.Callback):
    """Validates on the last step and logs the hyperparameters with the final val metrics.

    Lightning validates only every ``val_check_interval`` steps, so when ``max_steps`` is not a
    multiple of it the last val losses describe older weights. Asking the trainer to stop on the
    final batch makes it validate once more (as it does for early stopping); then
    ``trainer.callback_metrics`` (what train.py returns) hold the final network's val losses.
    Those are logged as ``final/val_<name>`` with ``params`` (the run's resolved config, default
    the system's hyperparameters): TensorBoard's HParams tab then compares a sweep's runs.
    """

    def __init__(self, params: dict | None = None):
        self.params = params

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        by_steps = 0 < trainer.max_steps <= trainer.global_step
        max_epochs = trainer.max_epochs or -1
        last_epoch = 0 < max_epochs <= trainer.current_epoch + 1
        by_epochs = last_epoch and batch_idx + 1 >= trainer.num_training_batches
        if by_steps or by_epochs:
            trainer.should_stop = True

    def final_metrics(self, trainer: L.Trainer) -> dict[str, float]:
        return {f"final/{name.replace('/', '_')}": float(value)
                for name, value in sorted(trainer.callback_metrics.items())
                if name.startswith("val/")}

    def on_train_end(self, trainer, system) -> None:
        metrics = self.final_metrics(trainer)
        if not metrics:  # validation switched off (limit_val_batches=0) or nothing ran
            return
        params = dict(system.hparams) if self.params is None else self.params
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(params, metrics, step=trainer.global_step)
            else:  # CSV and others take no metrics with their hyperparameters
                logger.log_hyperparams(params)
                logger.log_metrics(metrics, step=trainer.global_step)


class GracefulStop(L.Callback):
    """Ctrl-C stops training the way SIGTERM does: after the current step, with a checkpoint.

    Lightning handles SIGTERM (a preempted, cancelled or requeued job) at the next step boundary:
    it raises SIGTERMException there, and the checkpoint callback (save_on_exception) writes
    last.ckpt, so the run resumes exactly. A KeyboardInterrupt instead lands anywhere, even
    inside an optimizer step, and what gets saved may be half-updated. So during training the
    first Ctrl-C sends this process a SIGTERM; a second one interrupts at once, as usual.
    ``signal`` tells train.py which of the two stopped the run.
    """

    def __init__(self):
        self.signal = signal.SIGTERM
        self._previous = None

    def on_train_start(self, trainer, system) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self._previous)
        self.signal = signal.SIGINT
        rank_zero_info("\nCtrl-C: stopping after this step and saving a checkpoint "
                       "(Ctrl-C again to abort at once)")
        os.kill(os.getpid(), signal.SIGTERM)

    def teardown(self, trainer, system, stage) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_exception(self, trainer, system, exception) -> None:
        self.teardown(trainer, system, "fit")
