"""Checks of user values (command line, configs) before any work starts.

Each function returns the value converted to its type or raises one FastStyleError line that
names the key, the value and what is allowed. Hydra hands values over as whatever YAML made of
them (``max_steps=abc`` is a string, ``strength=1`` an int, ``quality=9.5`` a float), so the
conversion is part of the check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from fast_style.errors import FastStyleError


def _refuse(key: str, value, allowed: str) -> FastStyleError:
    return FastStyleError(f"{key}={value!r} is not allowed: {allowed}")


def whole(key: str, value, low: int | None = None, high: int | None = None,
          optional: bool = False) -> int | None:
    """An integer in [low, high] (either bound may be None); None allowed when ``optional``."""
    if value is None and optional:
        return None
    allowed = "a whole number" + (
        f" from {low} to {high}" if low is not None and high is not None
        else f" of at least {low}" if low is not None
        else f" of at most {high}" if high is not None else "") + (" (or null)" if optional else "")
    if isinstance(value, bool):
        raise _refuse(key, value, allowed)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _refuse(key, value, allowed) from None
    if not isinstance(value, int):
        raise _refuse(key, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _refuse(key, value, allowed)
    return value


def number(key: str, value, low: float | None = None, high: float | None = None) -> float:
    """A finite real number in [low, high]."""
    allowed = "a number" + (f" from {low:g} to {high:g}" if low is not None and high is not None
                            else f" of at least {low:g}" if low is not None
                            else f" of at most {high:g}" if high is not None else "")
    if isinstance(value, bool):
        raise _refuse(key, value, allowed)
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise _refuse(key, value, allowed) from None
    if (not math.isfinite(result) or (low is not None and result < low)
            or (high is not None and result > high)):
        raise _refuse(key, value, allowed)
    return result


def flag(key: str, value) -> bool:
    """true/false (YAML booleans; the strings true/false/yes/no/1/0 too)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise _refuse(key, value, "true or false")


def choice(key: str, value, options: Iterable[str]) -> str:
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise _refuse(key, value, f"one of {', '.join(options)}")
    return value


def check_training_config(cfg) -> None:
    """Every value train.py's run depends on, checked before any file, model or photo is touched.

    Converted values are written back, so what trains is what was checked (Hydra hands
    ``max_steps=100`` through as an int already; ``max_steps=1e3`` as a float).
    """
    from omegaconf import open_dict

    from fast_style.data import auto_workers
    from fast_style.module import LR_DECAYS
    from fast_style.transformer_net import MIN_SIDE, check_network_settings

    data, trainer, loss = cfg.data, cfg.trainer, cfg.loss
    with open_dict(cfg):
        data.batch_size = whole("data.batch_size", data.batch_size, 1, 4096)
        # Below MIN_SIDE the network's 9x9 reflection padding has nothing to reflect.
        data.image_size = whole("data.image_size", data.image_size, MIN_SIDE, 8192)
        # The short side the crop is cut at; null (or a data config without it): the crop's own.
        # Set to its value here, so that a resume compares what the crops really were.
        load_size = whole("data.load_size", data.get("load_size"), 1, 16384, optional=True)
        if load_size is not None and load_size < data.image_size:
            raise FastStyleError(
                f"data.load_size={load_size} is below data.image_size={data.image_size}: the "
                "crop is cut from the photo resized to load_size; raise data.load_size or set "
                "it to null")
        data.load_size = load_size or data.image_size
        devices = trainer.get("devices")  # DDP: one loader per device on this machine
        data.num_workers = (auto_workers(devices if isinstance(devices, int) else 1)
                            if str(data.num_workers) == "auto"
                            else whole("data.num_workers", data.num_workers, 0, 256))
        data.val_count = whole("data.val_count", data.val_count, 0)
        steps = whole("trainer.max_steps", trainer.max_steps, -1)
        if steps == 0:
            raise _refuse("trainer.max_steps", steps, "a whole number of at least 1 (or -1 with "
                          "trainer.max_epochs)")
        trainer.max_steps = steps
        max_time = trainer.get("max_time")
        if max_time is not None and not re.fullmatch(r"\d+:\d\d:\d\d:\d\d", str(max_time)):
            raise _refuse("trainer.max_time", max_time, "a wall-clock budget as DD:HH:MM:SS, "
                          "e.g. trainer.max_time=00:00:20:00 for 20 minutes")
        if isinstance(trainer.get("val_check_interval"), (int, str)):
            trainer.val_check_interval = whole("trainer.val_check_interval",
                                               trainer.val_check_interval, 1)
        trainer.log_every_n_steps = whole("trainer.log_every_n_steps",
                                          trainer.get("log_every_n_steps", 50), 1)
        cfg.checkpoint_every_n_steps = whole("checkpoint_every_n_steps",
                                             cfg.checkpoint_every_n_steps, 1)
        cfg.sample_every_n_steps = whole("sample_every_n_steps", cfg.sample_every_n_steps, 0)
        cfg.seed = whole("seed", cfg.seed, 0, 2**32 - 1)
        cfg.lr = number("lr", cfg.lr, 0, 10)
        if cfg.lr == 0:
            raise _refuse("lr", cfg.lr, "a learning rate above 0")
        cfg.lr_warmup_steps = whole("lr_warmup_steps", cfg.lr_warmup_steps, 0)
        cfg.lr_decay = choice("lr_decay", cfg.lr_decay, LR_DECAYS)
        if cfg.lr_decay != "none" and trainer.max_steps < 1 and not trainer.get("max_time"):
            raise _refuse("lr_decay", cfg.lr_decay, f"{cfg.lr_decay} needs trainer.max_steps of "
                          "1 or more or a trainer.max_time (the decay ends there); or use "
                          "lr_decay=none")
        cfg.keep_checkpoints = flag("keep_checkpoints", cfg.keep_checkpoints)
        for key in ("content_weight", "style_weight", "tv_weight"):
            loss[key] = number(f"loss.{key}", loss[key], 0)
        if cfg.style.get("size") is not None:
            cfg.style.size = whole("style.size", cfg.style.size, MIN_SIDE, 8192)
        cfg.overwrite = flag("overwrite", cfg.overwrite)
    model = cfg.model
    check_network_settings(model.width, model.num_residual_blocks, model.norm, model.upsample,
                           model.output_activation)
