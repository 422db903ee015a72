"""Train a feed-forward style network: python train.py style=starry_night [key=value ...]

Reads top to bottom: config -> data -> system -> callbacks and logger -> Trainer.fit.
"""

import logging
import signal
import sys
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from fast_style.callbacks import (
    Checkpoint,
    ConfigWriter,
    FinalMetrics,
    GracefulStop,
    InferenceFileWriter,
    SafeCheckpointIO,
    SampleGrid,
)
from fast_style.checks import check_training_config
from fast_style.data import PhotoDataModule
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.feedback import EarlyFeedback, StepProgressBar, model_line, quiet_start
from fast_style.hardware import training_precision
from fast_style.module import VAL_METRICS, StyleTransferSystem
from fast_style.multistyle.finetune import copy_trained_network, finetune_base
from fast_style.multistyle.selection import recorded_style_settings, style_entries, style_nodes
from fast_style.resume import check_resume
from fast_style.runs import read_resume_checkpoint, resumed_tensorboard_run, sweep_job
from fast_style.safe_io import remove_stale_temps, run_lock

log = logging.getLogger("train")


def train(cfg: DictConfig) -> float | None:
    quiet_start()
    check_training_config(cfg)  # every value, before any file, model or photo is touched
    L.seed_everything(cfg.seed, workers=True)
    ckpt_dir = Path(cfg.ckpt_dir)
    # One run per checkpoint folder. Only the first process locks and checks: DDP ranks started
    # later would find rank 0's lock and fresh files.
    with run_lock(ckpt_dir, enabled=rank_zero_only.rank == 0):
        if rank_zero_only.rank == 0:
            remove_stale_temps(ckpt_dir)  # a killed run's half-written files: we hold the lock
        return _train_locked(cfg, ckpt_dir)


def _train_locked(cfg: DictConfig, ckpt_dir: Path) -> float | None:
    fresh = cfg.ckpt_path is None and rank_zero_only.rank == 0
    if fresh and (ckpt_dir / "last.ckpt").exists() and not cfg.overwrite:
        raise FastStyleError(f"{ckpt_dir / 'last.ckpt'} exists: resume with ckpt_path=last, "
                             "train elsewhere with ckpt_dir=DIR, or replace it with overwrite=true")
    if cfg.objective not in VAL_METRICS:  # found now, not when a sweep's first run has ended
        raise FastStyleError(f"objective={cfg.objective} is not logged; choose one of "
                             f"{', '.join(VAL_METRICS)}")
    # Read and checked here (weights only, local file, fields of the right types), not left to
    # Lightning, which would unpickle anything from a URL.
    ckpt_path, resume_state = read_resume_checkpoint(cfg.ckpt_path, ckpt_dir)
    # One style, or several ('style=[a,b,c]', extra_styles): multistyle/selection.py.
    style_settings = recorded_style_settings(style_nodes(cfg))
    # trained with other settings: refused, naming them
    check_resume(cfg, resume_state, ckpt_path, style_settings)
    # auto: bf16-mixed where the hardware computes bf16, 32-true where bf16 would be emulated
    # (slower than fp32: benchmarks/README.md). Resolved here so config.yaml records the choice.
    cfg.trainer.precision = training_precision(cfg.trainer.precision, cfg.trainer.accelerator)

    styles = style_entries(cfg)  # the paintings found or downloaded
    datamodule = PhotoDataModule(**cfg.data, seed=cfg.seed)
    datamodule.setup()  # find (or download) the photos, or fail now, before the VGG and style
    log.info("photos: %d for training, %d held out, from %s", len(datamodule.train_paths),
             len(datamodule.val_paths), datamodule.root)

    # finetune=PATH adds the styles to a trained network, training only their scales and shifts;
    # its settings then win over model.* (the shared weights fix the layout).
    base, frozen, model = finetune_base(cfg.finetune, [s.name for s in styles], dict(cfg.model))
    images = [str(s.image) for s in styles]
    system = StyleTransferSystem(
        style_image=images[0] if len(images) == 1 else images,
        **style_settings,  # style_name, style_size: one value, or one per style
        frozen_styles=frozen,
        **model,
        **OmegaConf.to_container(cfg.loss, resolve=True),
        lr=cfg.lr,
        lr_warmup_steps=cfg.lr_warmup_steps,
        lr_decay=cfg.lr_decay,
    )
    if base is not None:
        copy_trained_network(base, system.transformer)
    log.info(model_line(system))

    stopper = GracefulStop()
    sample_grid = SampleGrid(every_n_steps=cfg.sample_every_n_steps)
    callbacks = [
        Checkpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.checkpoint_every_n_steps,
                   save_top_k=-1 if cfg.keep_checkpoints else 0, save_last=True, enable_version_counter=False, save_on_exception=True),
        InferenceFileWriter(ckpt_dir),
        ConfigWriter(ckpt_dir, OmegaConf.to_yaml(cfg, resolve=True)),
        sample_grid,
        EarlyFeedback(sample_grid),  # val losses and a grid at step 0 and 50: TensorBoard early
        StepProgressBar(),
        FinalMetrics(params=OmegaConf.to_container(cfg, resolve=True)),
        stopper,
    ]
    # A resumed run logs on in the interrupted run's TensorBoard run: one run, continuing curves.
    # (CSVLogger would empty a reused version's metrics.csv: a CSV run gets a new version.)
    continued = {}
    if str(cfg.logger._target_).endswith("TensorBoardLogger"):
        continued = resumed_tensorboard_run(resume_state)
    logger = hydra.utils.instantiate(cfg.logger, **continued)
    trainer_args = dict(cfg.trainer)
    if cfg.data.val_count == 0:  # nothing held out: train and save without validation
        trainer_args.update(limit_val_batches=0, num_sanity_val_steps=0)
    # PhotoDataModule shards the photos over DDP ranks itself (seeded and resumable), so
    # Lightning must not swap its sampler for a DistributedSampler.
    trainer = L.Trainer(**trainer_args, logger=logger, callbacks=callbacks,
                        plugins=[SafeCheckpointIO()], use_distributed_sampler=False)

    try:
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        # SIGTERM (preemption, scancel) or Ctrl-C: GracefulStop stopped after a whole step and
        # the checkpoint callback saved last.ckpt. One line instead of a traceback, and the
        # shell's exit status for a signal (128 + signal number) so schedulers see an interrupted job.
        stopped_by = stopper.signal or signal.SIGTERM
        last = trainer.checkpoint_callback.last_model_path
        if trainer.is_global_zero:
            saved = (f"{last} holds step {trainer.global_step}; continue with ckpt_path=last"
                     if last else "no step was finished, nothing saved")
            print(f"stopped by {stopped_by.name}: {saved}", file=sys.stderr)
        raise SystemExit(128 + stopped_by) from None

    # The number Hydra sweepers (hparams_search=optuna) minimise; see `objective` in train.yaml.
    final = trainer.callback_metrics.get(cfg.objective)
    return None if final is None else float(final)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with exit_on_user_error(), sweep_job(cfg):
        return train(cfg)


if __name__ == "__main__":
    main()
