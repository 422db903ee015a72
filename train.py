"""Train a feed-forward style network: python train.py style=starry_night [key=value ...]

Reads top to bottom: config -> data -> system -> callbacks and logger -> Trainer.fit.
"""

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
    FinalMetrics,
    GracefulStop,
    InferenceFileWriter,
    SampleGrid,
)
from fast_style.data import PhotoDataModule
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.module import VAL_METRICS, StyleTransferSystem
from fast_style.multistyle.finetune import copy_trained_network
from fast_style.multistyle.selection import style_entries
from fast_style.runs import resumed_tensorboard_run, sweep_job
from fast_style.stylize import load_transformer


def train(cfg: DictConfig) -> float | None:
    L.seed_everything(cfg.seed, workers=True)
    ckpt_dir = Path(cfg.ckpt_dir)
    # Only the first process checks: DDP ranks started later would find rank 0's fresh files.
    fresh = cfg.ckpt_path is None and rank_zero_only.rank == 0
    if fresh and (ckpt_dir / "last.ckpt").exists() and not cfg.overwrite:
        raise FastStyleError(f"{ckpt_dir / 'last.ckpt'} exists: resume with ckpt_path=last, "
                             "train elsewhere with ckpt_dir=DIR, or replace it with overwrite=true")
    if cfg.objective not in VAL_METRICS:  # found now, not when a sweep's first run has ended
        raise FastStyleError(f"objective={cfg.objective} is not logged; choose one of "
                             f"{', '.join(VAL_METRICS)}")

    # One style, or several ('style=[a,b,c]', extra_styles): multistyle/selection.py.
    styles = style_entries(cfg)
    datamodule = PhotoDataModule(**cfg.data, seed=cfg.seed)
    datamodule.setup()  # fail on a bad photo folder now, before the VGG and style are loaded

    # finetune=PATH adds the styles to a trained network, training only their scales and shifts.
    model = dict(cfg.model)
    base, frozen = None, None
    if cfg.finetune:
        base, info = load_transformer(cfg.finetune)
        frozen = info["style_names"]
        clash = sorted(set(frozen) & {s.name for s in styles})
        if clash:
            raise FastStyleError(f"{cfg.finetune} already holds style {clash[0]}; name the new "
                                 "one differently (style.name=)")
        # The shared weights fix the layout: the base network's settings win over model.*.
        model.update({k: v for k, v in info["transformer_hparams"].items() if k != "num_styles"})
    one = len(styles) == 1
    system = StyleTransferSystem(
        style_image=str(styles[0].image) if one else [str(s.image) for s in styles],
        style_name=styles[0].name if one else [s.name for s in styles],
        style_size=cfg.style.size,
        frozen_styles=frozen,
        **model,
        **OmegaConf.to_container(cfg.loss, resolve=True),
        lr=cfg.lr,
    )
    if base is not None:
        copy_trained_network(base, system.transformer)

    stopper = GracefulStop()
    callbacks = [
        Checkpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.checkpoint_every_n_steps,
                   save_top_k=0, save_last=True, enable_version_counter=False, save_on_exception=True),
        InferenceFileWriter(ckpt_dir),
        SampleGrid(every_n_steps=cfg.sample_every_n_steps),
        FinalMetrics(params=OmegaConf.to_container(cfg, resolve=True)),
        stopper,
    ]
    # A resumed run logs on in the interrupted run's TensorBoard run: one run, continuing curves.
    # (CSVLogger would empty a reused version's metrics.csv: a CSV run gets a new version.)
    continued = {}
    if str(cfg.logger._target_).endswith("TensorBoardLogger"):
        continued = resumed_tensorboard_run(cfg.ckpt_path, ckpt_dir)
    logger = hydra.utils.instantiate(cfg.logger, **continued)
    # PhotoDataModule shards the photos over DDP ranks itself (seeded and resumable), so
    # Lightning must not swap its sampler for a DistributedSampler.
    trainer = L.Trainer(**cfg.trainer, logger=logger, callbacks=callbacks,
                        use_distributed_sampler=False)
    if trainer.is_global_zero:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, ckpt_dir / "config.yaml", resolve=True)

    try:
        trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
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
