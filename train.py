"""Train a feed-forward style network: python train.py style=starry_night [key=value ...]

Reads top to bottom: config -> data -> system -> callbacks and logger -> Trainer.fit.
"""

from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from fast_style.callbacks import Checkpoint, FinalMetrics, InferenceFileWriter, SampleGrid
from fast_style.data import PhotoDataModule
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.module import StyleTransferSystem
from fast_style.styles import resolve_style_image


def train(cfg: DictConfig) -> float | None:
    L.seed_everything(cfg.seed, workers=True)
    ckpt_dir = Path(cfg.ckpt_dir)
    if cfg.ckpt_path is None and (ckpt_dir / "last.ckpt").exists() and not cfg.overwrite:
        raise FastStyleError(f"{ckpt_dir / 'last.ckpt'} exists: resume with ckpt_path=last, "
                             "train elsewhere with ckpt_dir=DIR, or replace it with overwrite=true")

    style_image = resolve_style_image(cfg.style.name, cfg.style.image, cfg.style.file,
                                      cfg.style.url, cfg.style.sha256)
    datamodule = PhotoDataModule(**cfg.data)
    datamodule.setup()  # fail on a bad photo folder now, before the VGG and style are loaded

    system = StyleTransferSystem(
        style_image=str(style_image),
        style_name=cfg.style.name,
        style_size=cfg.style.size,
        **cfg.model,
        **OmegaConf.to_container(cfg.loss, resolve=True),
        lr=cfg.lr,
    )

    callbacks = [
        Checkpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.checkpoint_every_n_steps,
                   save_top_k=0, save_last=True, enable_version_counter=False, save_on_exception=True),
        InferenceFileWriter(ckpt_dir),
        SampleGrid(every_n_steps=cfg.sample_every_n_steps),
        FinalMetrics(params=OmegaConf.to_container(cfg, resolve=True)),
    ]
    logger = hydra.utils.instantiate(cfg.logger)
    trainer = L.Trainer(**cfg.trainer, logger=logger, callbacks=callbacks)
    if trainer.is_global_zero:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, ckpt_dir / "config.yaml", resolve=True)

    trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.ckpt_path)

    final = trainer.callback_metrics.get("val/loss")
    return None if final is None else float(final)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with exit_on_user_error():
        return train(cfg)


if __name__ == "__main__":
    main()
