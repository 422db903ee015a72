"""Resuming only what was asked for: a checkpoint trained with other settings is refused.

``ckpt_path=last`` after a change of style, image size, batch size, network or loss settings
would otherwise continue the old run's state under new names (a ``debug=tiny`` run's 64 px
network continued as a 256 px one), or fail deep inside Lightning with a state-dict traceback.
``accept_changed_settings=true`` continues anyway, with the new settings.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fast_style.errors import FastStyleError

# setting as it reads on the command line -> where the checkpoint keeps it
# ("hp": the system's hyperparameters; "data": PhotoDataModule.state_dict()).
SETTINGS = {
    "style.name": ("hp", "style_name"), "style.size": ("hp", "style_size"),
    "data.image_size": ("data", "image_size"), "data.batch_size": ("data", "batch_size"),
    "data.load_size": ("data", "load_size"),
    "model.width": ("hp", "width"), "model.num_residual_blocks": ("hp", "num_residual_blocks"),
    "model.norm": ("hp", "norm"), "model.upsample": ("hp", "upsample"),
    "model.output_activation": ("hp", "output_activation"),
    "loss.content_weight": ("hp", "content_weight"), "loss.style_weight": ("hp", "style_weight"),
    "loss.tv_weight": ("hp", "tv_weight"), "loss.content_layer": ("hp", "content_layer"),
    "loss.style_layers": ("hp", "style_layers"), "loss.vgg_weights": ("hp", "vgg_weights"),
    "lr": ("hp", "lr"), "lr_warmup_steps": ("hp", "lr_warmup_steps"),
    "lr_decay": ("hp", "lr_decay"),
}


def changed_settings(checkpoint: dict, cfg: DictConfig, styles: dict | None = None) -> list[str]:
    """``key=old->new`` for every setting the checkpoint was trained with that cfg changes.

    ``styles``: ``style_name`` and ``style_size`` as this run would record them
    (multistyle.selection.recorded_style_settings): for several styles the command line's list,
    not ``cfg.style``, which holds only the last of them."""
    recorded = {"hp": checkpoint.get("hyper_parameters") or {},
                "data": dict(checkpoint.get("PhotoDataModule") or {})}
    data = recorded["data"]
    if "image_size" in data:  # checkpoints older than load_size cut their crops at the crop's size
        data["load_size"] = data.get("load_size") or data["image_size"]
    changes = []
    for key, (where, name) in SETTINGS.items():
        if name not in recorded[where]:
            continue  # an older checkpoint that did not record it
        old = recorded[where][name]
        new = styles[name] if styles and name in styles else _plain(cfg, key)
        if isinstance(new, list) and not isinstance(old, list):  # one size for every style,
            old = [old] * len(new)                               # as older checkpoints recorded
        if old != new and not _same_number(old, new):
            changes.append(f"{key}={old}->{new}")
    return changes


def check_resume(cfg: DictConfig, checkpoint: dict | None, path: str | Path | None,
                 styles: dict | None = None) -> None:
    """Raises one line naming the differences unless cfg.accept_changed_settings.

    ``checkpoint``: the resume checkpoint as runs.read_resume_checkpoint read and checked it
    (None for a fresh run)."""
    if checkpoint is None or cfg.get("accept_changed_settings"):
        return
    changes = changed_settings(checkpoint, cfg, styles)
    if changes:
        raise FastStyleError(f"{path} was trained with other settings ({', '.join(changes)}): "
                             "resume with the run's settings, start afresh elsewhere with "
                             "ckpt_dir=DIR, or continue with the new ones: accept_changed_settings=true")


def _plain(cfg: DictConfig, key: str):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False
