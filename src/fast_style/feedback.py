"""What a person sees while training: a quiet terminal, a progress bar for the run, an early look.

- ``quiet_start``: hides Lightning's messages that nobody training here can act on (each filter
  names its exact message and says why), and sends Lightning's log lines to the run's train.log.
- ``StepProgressBar``: one bar for the whole run, ``step 170/40000`` with its rate and the time
  left (Lightning's bar counts the batches of an epoch, which mean nothing with max_steps).
- ``EarlyFeedback``: a validation and a sample grid at step 0 and again after the first steps, so
  TensorBoard shows something within minutes on a CPU, then the usual cadence takes over.
- ``model_line``: the one-line model summary that replaces Lightning's table (whose bf16 warning
  and "Total FLOPs: 0" line say nothing here).
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections import defaultdict

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, convert_inf

from fast_style.module import budget_time_done, budget_timer, time_budget_binds

log = logging.getLogger(__name__)

# Lightning's info lines that advertise rather than inform.
_ADVERTS = ("💡 Tip:",)
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERTS)


def quiet_start() -> None:
    """Call once Hydra has set up logging (inside the task function)."""
    # Lightning's __init__s give their loggers console handlers and stop propagation when they
    # are imported before logging is configured (train.py imports them first): their lines then
    # never reach Hydra's train.log. Hand them to the root logger's handlers (console, train.log).
    if logging.getLogger().handlers:
        for name in _LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    logger.removeHandler(handler)
            logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdverts())
    # torch 2.14 deprecated LeafSpec; Lightning 2.6's _pytree still uses it, on every start.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Lightning looks for state_dict() on the DataLoader itself; ours lives in PhotoDataModule
    # (its sampler position is saved in every checkpoint and restored: resumes are exact and
    # tested), so this warning would contradict what actually happens.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before "
                            "the epoch ended and your dataloader is not resumable")


def model_line(system: L.LightningModule) -> str:
    trainable = sum(p.numel() for p in system.transformer.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in system.vgg.parameters())
    return (f"transform network: {trainable / 1e6:.2f} M trainable parameters; loss network: "
            f"VGG-16 ({system.vgg.weights} weights), {frozen / 1e6:.2f} M frozen")


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting optimizer steps over the whole run, not batches per epoch."""

    TRAIN_BAR_FORMAT = ("{desc}{percentage:3.0f}%|{bar:20}| step {n_fmt}/{total_fmt} "
                        "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def init_train_tqdm(self) -> Tqdm:
        trainer = self.trainer
        return Tqdm(desc="training: ", total=convert_inf(trainer.estimated_stepping_batches),
                    initial=trainer.global_step,  # a resumed run starts where it stopped
                    unit="step",  # the rate reads "2.1s/step" when slow, "12.3step/s" when fast
                    position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0,
                    bar_format=self.TRAIN_BAR_FORMAT)

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        pass  # one bar for the whole run: a new epoch resets nothing

    # A refresh reads the step's loss off the device, which on a GPU waits for every step
    # queued there (~10 ms each): refreshing at most this often leaves the GPU a queue.
    REFRESH_S = 0.5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._refreshed_at = -math.inf

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar.disable or not self._should_update(trainer.global_step, bar.total):
            return
        now = time.monotonic()
        last = trainer.should_stop or (bar.total is not None and trainer.global_step >= bar.total)
        if now - self._refreshed_at >= self.REFRESH_S or last:
            self._refreshed_at = now
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, system), refresh=True)

    def get_metrics(self, trainer, system):
        metrics = super().get_metrics(trainer, system)
        metrics.pop("v_num", None)  # the TensorBoard version: noise next to the loss
        # The last step's loss, read only here (the system logs none to the bar: see its
        # on_train_batch_end).
        loss = getattr(system, "step_losses", {}).get("loss")
        if loss is not None:
            metrics["loss"] = float(loss)
        # A budget in minutes (trainer.max_time) that ends the run before max_steps does: the
        # bar's own estimate counts towards max_steps, so say when the budget runs out.
        timer = budget_timer(trainer)
        if timer is not None and time_budget_binds(trainer.global_step, trainer.max_steps,
                                                   budget_time_done(trainer)):
            left = max(0, round(timer.time_remaining("train")))
            metrics["time_left"] = f"{left // 60}:{left % 60:02d}"
        return metrics


class EarlyFeedback(L.Callback):
    """Validation losses and a sample grid at ``steps`` (default: before the first step and after
    the 50th), besides the usual every-N-steps ones, so that a slow (CPU) run shows something in
    TensorBoard within minutes.

    Uses no random numbers (centre crops, no DataLoader), so runs stay reproducible and resumes
    exact; logs straight to the loggers, so what train.py returns (callback_metrics) is untouched.
    """

    def __init__(self, sample_grid, steps: tuple[int, ...] = (0, 50)):
        self.sample_grid = sample_grid
        self.steps = steps

    def on_train_start(self, trainer, system) -> None:
        if trainer.global_step == 0 and 0 in self.steps:
            self.show(trainer, system)

    def on_train_batch_end(self, trainer, system, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step in self.steps and step > 0:
            self.show(trainer, system)

    def show(self, trainer: L.Trainer, system: L.LightningModule) -> None:
        if not trainer.is_global_zero or not trainer.loggers:
            return
        step = trainer.global_step
        interval = trainer.val_check_interval
        due = isinstance(interval, int) and step > 0 and step % interval == 0  # Lightning does it
        if trainer.limit_val_batches != 0 and not due:
            metrics = self.validate(trainer, system)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
        every = self.sample_grid.every_n_steps
        if self.sample_grid.enabled(trainer) and (step == 0 or step % every):
            self.sample_grid.log_grid(trainer, system)

    @torch.no_grad()
    def validate(self, trainer: L.Trainer, system) -> dict[str, float]:
        datamodule = trainer.datamodule
        dataset = datamodule.val_dataset()
        sums, count = defaultdict(float), 0
        was_training = system.training
        system.eval()
        try:
            with trainer.strategy.precision_plugin.forward_context():
                for start in range(0, len(dataset), datamodule.batch_size):
                    indices = range(start, min(start + datamodule.batch_size, len(dataset)))
                    photos = torch.stack([dataset[i] for i in indices]).to(system.device)
                    for name, value in system.validation_metrics(photos).items():
                        sums[name] += float(value) * len(photos)
                    count += len(photos)
        finally:
            system.train(was_training)
        return {f"val/{name}": total / count for name, total in sums.items()}
