"""Training callbacks: sample image grids, the small inference file, final metrics + HParams."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid

from fast_style.image_io import save_image
from fast_style.safe_io import atomic_write_text, load_torch_file, save_torch_file
from fast_style.stylize import INFERENCE_FORMAT, INFERENCE_FORMAT_MULTI


def stylise_eval(system: L.LightningModule, photos: torch.Tensor,
                 style_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Stylise in eval mode without gradients, restoring the previous mode after."""
    was_training = system.transformer.training
    system.transformer.eval()
    try:
        with torch.no_grad():
            weights = None if style_weights is None else style_weights.to(system.device)
            return system.transformer(photos.to(system.device), weights).float().clamp(0, 1).cpu()
    finally:
        system.transformer.train(was_training)


def every_style(system: L.LightningModule) -> list[torch.Tensor | None]:
    """One-hot weights of each style the network holds (None for a one-style network)."""
    n = system.transformer.num_styles
    return [None] if n == 1 else list(torch.eye(n).unsqueeze(1))


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` logs a grid: held-out photos on top, their stylisations below
    (one row per style for a network of several)."""

    def __init__(self, every_n_steps: int = 500, count: int = 4):
        self.every_n_steps = every_n_steps
        self.count = count
        self._photos: torch.Tensor | None = None

    def _sample_photos(self, trainer: L.Trainer) -> torch.Tensor:
        if self._photos is None:
            dataset = trainer.datamodule.val_dataset()
            self._photos = torch.stack([dataset[i] for i in range(min(self.count, len(dataset)))])
        return self._photos

    def enabled(self, trainer: L.Trainer) -> bool:
        # data.val_count=0 holds no photo out: no grid to show (training photos would flatter).
        return (self.every_n_steps > 0 and trainer.is_global_zero
                and len(trainer.datamodule.val_paths) > 0)

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        if self.enabled(trainer) and trainer.global_step % self.every_n_steps == 0:
            self.log_grid(trainer, system)

    def on_train_end(self, trainer, system) -> None:
        if self.enabled(trainer):
            self.log_grid(trainer, system)

    def log_grid(self, trainer: L.Trainer, system: L.LightningModule) -> None:
        photos = self._sample_photos(trainer)
        rows = [stylise_eval(system, photos, weights) for weights in every_style(system)]
        grid = make_grid(torch.cat([photos, *rows]), nrow=len(photos), padding=2)
        logger = trainer.logger
        if logger is None:
            return
        experiment = logger.experiment
        if hasattr(experiment, "add_image"):  # TensorBoard
            experiment.add_image("samples/content_vs_stylised", grid, trainer.global_step)
        else:  # loggers without images (CSV): a PNG beside the metrics
            save_image(grid, Path(logger.log_dir) / "samples" / f"step_{trainer.global_step:07d}.png")


def inference_payload(system: L.LightningModule) -> dict:
    """The transform net's weights plus what is needed to rebuild it: loadable with weights_only.
    A network of several styles (format v2) lists them in order in ``style_names``."""
    names = list(system.style_names)
    payload = {
        "format": INFERENCE_FORMAT if len(names) == 1 else INFERENCE_FORMAT_MULTI,
        "transformer_hparams": dict(system.transformer_hparams()),
        "state_dict": {k: v.detach().cpu() for k, v in system.transformer.state_dict().items()},
        "style_name": "+".join(names),
    }
    if len(names) > 1:
        payload["style_names"] = names
    return payload


class InferenceFileWriter(L.Callback):
    """Writes ``<dirpath>/<style>.pth`` beside every Lightning checkpoint and at the end."""

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    def path_for(self, system: L.LightningModule) -> Path:
        names = "+".join(system.style_names)
        # Many styles: a short name (file names end at 255 bytes).
        return self.dirpath / (f"{names}.pth" if len(names) <= 100
                               else f"{len(system.style_names)}_styles.pth")

    def write(self, trainer: L.Trainer, system: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        payload = inference_payload(system)
        payload["global_step"] = trainer.global_step
        save_torch_file(self.path_for(system), payload)

    def on_save_checkpoint(self, trainer, system, checkpoint) -> None:
        self.write(trainer, system)

    def on_train_end(self, trainer, system) -> None:
        self.write(trainer, system)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint file I/O, made atomic in the checkpoint's own folder and safe to load.

    Lightning saves through fsspec's transaction, which writes to a temp file in $TMPDIR and
    moves it into place: across filesystems (checkpoints on another disk or a tmpfs) that move
    is a copy, and a kill during it left last.ckpt empty. Here the temp file is in the target's
    folder and renamed (safe_io.atomic_write). Loading goes through safe_io.load_torch_file:
    weights only, local files only (Lightning itself would unpickle anything from a URL).
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        save_torch_file(path, checkpoint)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_torch_file(path)


class ConfigWriter(L.Callback):
    """Writes the run's resolved config as ``<dirpath>/config.yaml`` once training has started.

    Not before: a run that fails to start (bad value, unreadable checkpoint) must leave the
    folder's files as they were, including the config of the run that made them.
    """

    def __init__(self, dirpath: str | Path, yaml: str):
        self.path, self.yaml = Path(dirpath) / "config.yaml", yaml

    def on_train_start(self, trainer, system) -> None:
        if trainer.is_global_zero:
            atomic_write_text(self.path, self.yaml)


class Checkpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus last.ckpt at the very end and the logger version inside.

    Lightning writes last.ckpt at train end only if nothing was saved before; the steps after the
    last periodic save would then be lost whenever max_steps is not a multiple of the interval.
    The logger version lets a resumed run log on in the same TensorBoard run
    (runs.resumed_tensorboard_run).
    """

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["log_version"] = trainer.logger.version if trainer.logger else None

    def on_exception(self, trainer, pl_module, exception) -> None:
        # Only GracefulStop's stop (SIGTERMException, at a step's end) leaves a state that resumes
        # exactly. A crash or a second Ctrl-C can land inside a step: keep the last good
        # last.ckpt rather than overwrite it with a half-done step.
        if isinstance(exception, SIGTERMException) and self._should_save_on_exception(trainer):
            # ModelCheckpoint.on_exception's saves, without its "An SIGTERMException was raised"
            # line: train.py says in one line what was saved and how to continue.
            candidates = self._monitor_candidates(trainer)
            self._save_checkpoint(trainer, self.format_checkpoint_name(metrics=candidates))
            self._save_last_checkpoint(trainer, candidates)

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
    """SIGTERM or Ctrl-C stops training after the current step, with a checkpoint that resumes it.

    A preempted, cancelled or requeued job gets SIGTERM; a person presses Ctrl-C. Either can land
    anywhere: inside an optimizer step, during validation, between two loops. The handlers only
    note it. At the end of the step in progress (``on_train_batch_end``) the processes agree to
    stop (one tiny all-reduce under DDP, as Lightning does itself every step) and raise Lightning's
    SIGTERMException; the checkpoint callback (save_on_exception) then writes last.ckpt.

    Why not Lightning's own SIGTERM handling: it raises later, after the loop has advanced its
    logger-step counter, and its resume logic expects checkpoints taken where ModelCheckpoint takes
    them. A run resumed from there logged every step one too high when the stop fell on a
    validation step, and after an epoch's last step also trained on the wrong batches.
    ``on_train_batch_end`` is where ModelCheckpoint saves, so the resume is exact.

    A second Ctrl-C interrupts at once, as usual. ``signal`` says which signal stopped the run.
    """

    def __init__(self):
        self.signal: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}
        self._progress_bar = None

    def on_train_start(self, trainer, system) -> None:
        self._progress_bar = trainer.progress_bar_callback
        if trainer.received_sigterm:  # came before training started, to Lightning's handler
            self.signal = signal.SIGTERM
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        if signum == signal.SIGINT:  # the next Ctrl-C raises KeyboardInterrupt at once
            signal.signal(signal.SIGINT, self._previous.pop(signal.SIGINT))
        if self.signal is None:
            self.signal = signal.Signals(signum)
            note = (f"{self.signal.name}: stopping after this step and saving a checkpoint"
                    + (" (Ctrl-C again to abort at once)" if signum == signal.SIGINT else ""))
            # Shown in the progress bar's place when there is one: the run then ends with one
            # line (train.py's "stopped by ...") rather than a note, a bar, and that line.
            bar = getattr(self._progress_bar, "_train_progress_bar", None)
            if bar is not None and not bar.disable:
                bar.set_description(note)
            else:
                rank_zero_info(f"\n{note}")

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        if trainer.strategy.reduce_boolean_decision(self.signal is not None, all=False):
            self.signal = self.signal or signal.SIGTERM  # another process was signalled
            # Lightning sends a step's metrics to the loggers after this hook: send this step's
            # losses now, at the step Lightning would use (as it does when a run stops), or the
            # curve has a hole (the system logs only on logging steps; see training_step).
            # Averaged over the processes, as its sync_dist logging does (every process is here).
            step_metrics = {f"train/{k}": float(trainer.strategy.reduce(v, reduce_op="mean"))
                            for k, v in system.step_losses.items()}
            step_metrics.setdefault("epoch", trainer.current_epoch)
            for logger in trainer.loggers:
                logger.log_metrics(step_metrics, step=trainer.global_step - 1)
            raise SIGTERMException

    def teardown(self, trainer, system, stage) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        self._previous = {}

    def on_exception(self, trainer, system, exception) -> None:
        self.teardown(trainer, system, "fit")
